"""TLS for the gRPC port: the server's certificate, ALPN ``h2``, optional client certificates.

:class:`ServerTls` is read from the settings once and gives each gRPC core what it takes:
an :class:`ssl.SSLContext` for inferd's own transport, ``grpc.ServerCredentials`` for
grpcio's C-core server. Both require a client certificate signed by ``tls_ca_file`` when
one is set.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from inferd.errors import ConfigError
from inferd.settings import Settings


@dataclass(frozen=True)
class ServerTls:
    """The gRPC port's TLS files (PEM).

    Attributes:
        certfile: the server's certificate chain.
        keyfile: the private key of ``certfile``.
        ca_file: CA bundle; when set, clients must present a certificate it signed.
    """

    certfile: Path
    keyfile: Path
    ca_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context for inferd's own transport (TLS 1.2 or later, ALPN ``h2``).

        Raises:
            ConfigError: a file cannot be read or does not hold what it should.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 9113 section 9.2
        try:
            context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as err:
            problem = f"cannot load with tls_keyfile: {err}"
            raise ConfigError("settings", "tls_certfile", problem) from err
        if self.ca_file is not None:
            try:
                context.load_verify_locations(self.ca_file)
            except (OSError, ssl.SSLError) as err:
                raise ConfigError("settings", "tls_ca_file", f"cannot load: {err}") from err
            context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["h2"])
        return context

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials for grpcio's C-core server (which negotiates ``h2`` itself).

        Raises:
            ConfigError: a file cannot be read.
        """
        try:
            cert, key = self.certfile.read_bytes(), self.keyfile.read_bytes()
        except OSError as err:
            raise ConfigError("settings", "tls_certfile", f"cannot read: {err}") from err
        try:
            ca = self.ca_file.read_bytes() if self.ca_file is not None else None
        except OSError as err:
            raise ConfigError("settings", "tls_ca_file", f"cannot read: {err}") from err
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


def server_tls(settings: Settings) -> ServerTls | None:
    """The gRPC port's TLS from ``tls_certfile``, ``tls_keyfile`` and ``tls_ca_file``; None
    without ``tls_certfile``. The files are checked here, so that a bad one stops the start
    with its name whichever core serves.

    Raises:
        ConfigError: ``tls_keyfile`` is missing, or a file cannot be read or does not hold
            what it should.
    """
    if settings.tls_certfile is None:
        return None
    if settings.tls_keyfile is None:
        raise ConfigError("settings", "tls_keyfile", "needed with tls_certfile")
    tls = ServerTls(settings.tls_certfile, settings.tls_keyfile, settings.tls_ca_file)
    tls.ssl_context()  # parses the chain, the key and the CA bundle: the errors name the file
    return tls
