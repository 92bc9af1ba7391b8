"""The HTTP/1.1 transport: uvicorn's httptools protocol with inferd's slow-client limits."""
