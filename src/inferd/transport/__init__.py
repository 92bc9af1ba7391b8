"""Transports: bytes in, requests to the API layer out; hostile-input limits live here.

``http`` is the ASGI server glue (uvicorn's httptools protocol), ``grpc`` the gRPC server:
its HTTP/2 core, gRPC framing and call context, health checking and reflection.
"""
