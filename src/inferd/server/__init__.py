"""Transports: the ASGI app (and, with its issue, the gRPC server) over one data plane."""
