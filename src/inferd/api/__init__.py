"""The API layer: routes over one data plane (V2, ``/predict``, ``/v1`` management, keys,
jobs; the gRPC service), the OpenAPI document, and the wiring of one server process."""
