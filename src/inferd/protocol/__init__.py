"""Wire codecs: bytes to :class:`~inferd.types.InferenceRequest` and responses to bytes.

Pure functions, no web framework: the transports in ``inferd.transport`` read the body and
headers, call a decoder, hand the request to the data plane and send what an encoder returns.

- :mod:`inferd.protocol.v2`: Open Inference Protocol (KServe V2) REST, JSON and Triton's
  binary tensor extension (``Inference-Header-Content-Length``).
- :mod:`inferd.protocol.predict`: the simple ``/predict`` shape.
"""

from inferd.protocol.predict import decode_predict_request, encode_predict_response
from inferd.protocol.v2 import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    ResponseFormat,
    decode_infer_request,
    encode_error,
    encode_infer_response,
)

__all__ = [
    "BINARY_CONTENT_TYPE",
    "HEADER_LENGTH",
    "JSON_CONTENT_TYPE",
    "ResponseFormat",
    "decode_infer_request",
    "decode_predict_request",
    "encode_error",
    "encode_infer_response",
    "encode_predict_response",
]
