"""The gRPC transport: HTTP/2 connections, gRPC framing and call context, the server."""
