"""TLS for the gRPC port: the server's certificate, ALPN ``h2``, optional client certificates."""

from __future__ import annotations

import ssl

from inferd.errors import ConfigError
from inferd.settings import Settings


def grpc_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the gRPC port (HTTP/2 by ALPN), or None without ``tls_certfile``; with
    ``tls_ca_file``, clients must present a certificate that CA signed.

    Raises:
        ConfigError: a file cannot be read or does not hold what it should.
    """
    if settings.tls_certfile is None:
        return None
    if settings.tls_keyfile is None:
        raise ConfigError("settings", "tls_keyfile", "needed with tls_certfile")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 9113 section 9.2
    try:
        context.load_cert_chain(settings.tls_certfile, settings.tls_keyfile)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(
            "settings", "tls_certfile", f"cannot load with tls_keyfile: {err}"
        ) from err
    if settings.tls_ca_file is not None:
        try:
            context.load_verify_locations(settings.tls_ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError("settings", "tls_ca_file", f"cannot load: {err}") from err
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    return context
