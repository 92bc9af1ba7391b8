"""How the SDK clients connect: the URL, TLS (which CA to trust, the client certificate
for mutual TLS), the API key, and the gRPC channel or httpx client both clients open."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx

from inferd.client._grpc import GrpcProtocol
from inferd.client._http import HttpProtocol


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


def parse_url(url: str) -> tuple[str, str]:
    """``http://h:p``, ``https://h:p``, ``grpc://h:p`` or ``grpcs://h:p`` -> (scheme, base).

    Raises:
        ValueError: another scheme, or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.netloc:
        raise ValueError(
            "url: expected http://host:port, https://host:port, grpc://host:port or "
            f"grpcs://host:port, got {url!r}"
        )
    if parts.scheme in ("grpc", "grpcs"):
        return parts.scheme, parts.netloc
    return parts.scheme, f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


# Every connection the pool opens stays open for reuse: httpx keeps only 20 by default, so
# more concurrent calls than that (infer_many) would open and close a connection per call.
HTTP_LIMITS = httpx.Limits(max_connections=128, max_keepalive_connections=128)


@dataclass(slots=True)
class Transport:
    """What a client talks through: one of ``channel`` (gRPC) and ``http`` is set."""

    protocol: HttpProtocol | GrpcProtocol
    metadata: tuple[tuple[str, str], ...] | None  # gRPC metadata (the API key)
    channel: Any = None  # grpc.Channel, or grpc.aio.Channel for the async client
    http: Any = None  # httpx.Client, or httpx.AsyncClient for the async client


def open_transport(
    url: str, *, timeout: float, binary: bool, max_message_bytes: int, api_key: str | None,
    tls: Tls | None, aio: bool,
) -> Transport:  # fmt: skip
    """The channel or httpx client for ``url``; the API key defaults to ``$INFERD_API_KEY``.

    Raises:
        ValueError: a URL the SDK cannot use.
    """
    scheme, base = parse_url(url)
    api_key = api_key or os.environ.get("INFERD_API_KEY") or None
    auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
    metadata = tuple(auth.items()) or None
    if scheme in ("grpc", "grpcs"):
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        secure = scheme == "grpcs" or tls is not None
        credentials = (tls or Tls()).grpc_credentials() if secure else None
        module = grpc.aio if aio else grpc
        if credentials is not None:
            channel = module.secure_channel(base, credentials, options=options)
        else:
            channel = module.insecure_channel(base, options=options)
        return Transport(GrpcProtocol(), metadata, channel=channel)
    verify: ssl.SSLContext | bool = tls.ssl_context() if tls is not None else True
    factory = httpx.AsyncClient if aio else httpx.Client
    http = factory(base_url=base, timeout=timeout, headers=auth, verify=verify, limits=HTTP_LIMITS)
    return Transport(HttpProtocol(binary), metadata, http=http)
