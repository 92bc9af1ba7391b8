"""TLS for the SDK: which CA to trust, and the client certificate for mutual TLS."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS settings for ``https://`` and ``grpcs://`` URLs.

    Attributes:
        ca_file: PEM bundle of the CAs to trust; None: the system store (``SSL_CERT_FILE``
            for HTTP, gRPC's bundled roots or ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` for gRPC).
        cert_file: PEM client certificate (chain), for servers that require one (mTLS).
        key_file: PEM private key of ``cert_file``.

    Example:
        >>> Client("https://infer.example:8000", tls=Tls("ca.pem", "me.pem", "me-key.pem"))
    """

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: give cert_file and key_file together (or neither)")

    def ssl_context(self) -> ssl.SSLContext:
        """The context httpx verifies the server with (and presents the client cert from)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials of a ``grpcs://`` channel."""

        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            read(self.ca_file), read(self.key_file), read(self.cert_file)
        )


def grpc_channel(
    scheme: str, target: str, options: list[tuple[str, Any]], tls: Tls | None, *, aio: bool
) -> Any:
    """A blocking or asyncio channel; secure for ``grpcs://`` or when ``tls`` is given."""
    if scheme == "grpcs" or tls is not None:
        credentials = (tls or Tls()).grpc_credentials()
        if aio:
            return grpc.aio.secure_channel(target, credentials, options=options)
        return grpc.secure_channel(target, credentials, options=options)
    if aio:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.insecure_channel(target, options=options)


# Every connection the pool opens stays open for reuse: httpx keeps only 20 by default, so
# more concurrent calls than that (infer_many) would open and close a connection per call.
HTTP_LIMITS = httpx.Limits(max_connections=128, max_keepalive_connections=128)


def http_verify(tls: Tls | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: the TLS context, or True for the default trust store."""
    return tls.ssl_context() if tls is not None else True
