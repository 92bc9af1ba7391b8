"""Security wiring for the transports: the auth mode, the guard, HTTP key extraction, the
gRPC interceptor and TLS credentials.

With auth off there is no guard at all: the HTTP app and the gRPC server run exactly the
code they run without this module. With auth on, HTTP calls :meth:`Guard.admit` once per
request and gRPC goes through :class:`AuthInterceptor`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc

from inferd.api.grpc import grpc_status
from inferd.errors import ConfigError, InferdError, RegistryUnavailable
from inferd.registry import Registry
from inferd.security.guard import Guard, bootstrap_keys
from inferd.security.jwt import JwtSettings, JwtVerifier
from inferd.security.keys import ApiKey, KeyStore
from inferd.security.limits import RequestLimits
from inferd.security.policy import Group, classify_grpc, grpc_model
from inferd.settings import Settings
from inferd.transport.grpc.context import ServicerContext

logger = logging.getLogger(__name__)

_BEARER = b"bearer "


def http_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The API key of an ASGI request: ``Authorization: Bearer K`` or ``X-API-Key: K``."""
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() == _BEARER:
                return value[7:].strip()
        elif name == b"x-api-key":
            return value.strip()
    return None


def _grpc_token(metadata: Any) -> str | None:
    for item in metadata or ():
        key, value = item[0], item[1]
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
        elif key == "x-api-key":
            return (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def jwt_verifier(settings: Settings) -> JwtVerifier | None:
    """The JWT verifier the settings ask for; None when no JWT key is configured.

    Raises:
        ConfigError: an unreadable key file, or algorithms that do not fit the key.
    """
    if settings.jwt_key_file is None and settings.jwt_jwks_file is None:
        return None
    algorithms = None
    if settings.jwt_algorithms:
        algorithms = tuple(a.strip() for a in settings.jwt_algorithms.split(",") if a.strip())
    return JwtVerifier(JwtSettings(
        key_file=settings.jwt_key_file.expanduser() if settings.jwt_key_file else None,
        jwks_file=settings.jwt_jwks_file.expanduser() if settings.jwt_jwks_file else None,
        algorithms=algorithms, audience=settings.jwt_audience, issuer=settings.jwt_issuer,
        role_claim=settings.jwt_role_claim, models_claim=settings.jwt_models_claim,
    ))  # fmt: skip


def admin_keys(settings: Settings) -> list[str]:
    """The bootstrap admin keys from ``INFERD_ADMIN_KEY`` and ``INFERD_ADMIN_KEY_FILE``.

    Raises:
        ConfigError: the file cannot be read or holds a key shorter than 16 characters.
    """
    keys = [settings.admin_key] if settings.admin_key else []
    if settings.admin_key_file is not None:
        try:
            text = settings.admin_key_file.expanduser().read_text().strip()
        except OSError as err:
            raise ConfigError("settings", "admin_key_file", f"cannot read: {err}") from err
        if len(text) < 16:
            problem = "the key in the file must have at least 16 characters"
            raise ConfigError("settings", "admin_key_file", problem)
        keys.append(text)
    return keys


@dataclass
class Security:
    """What the server needs for auth and limits; ``guard`` is None with auth off."""

    guard: Guard | None
    limits: RequestLimits
    mode: str
    store: KeyStore

    @classmethod
    def from_settings(cls, settings: Settings, registry: Registry) -> Security:
        """Resolve ``--auth`` and log it.

        ``auto`` is off only on a loopback host with no key configured (the quick start), and
        on for any other address or once a key (bootstrap, registry or JWT) exists.
        """
        limits = RequestLimits(
            settings.max_tensor_elements, settings.max_batch_rows, settings.max_string_bytes
        )
        store = KeyStore(registry)
        admins = admin_keys(settings)
        verifier = jwt_verifier(settings)
        mode, why = settings.auth, "--auth " + settings.auth
        loopback = _is_loopback(settings.host)
        configured = bool(admins) or verifier is not None or _has_keys(store)
        if mode == "auto":
            if not loopback:
                mode, why = "on", f"auto: host {settings.host} is not loopback"
            else:
                mode = "on" if configured else "off"
                why = "auto: " + ("credentials configured" if configured else
                                  "loopback host, no API keys or JWT configured")  # fmt: skip
        if mode == "off":
            if loopback:
                logger.info("authentication off (%s) on loopback host %s", why, settings.host)
            else:
                logger.warning(
                    "authentication off (%s) on %s: anyone who reaches the port may do "
                    "everything; create a key (inferd keys create) or set INFERD_ADMIN_KEY",
                    why, settings.host,
                )  # fmt: skip
            return cls(None, limits, mode, store)
        logger.info("authentication on (%s)", why)
        if not configured:
            logger.warning(
                "authentication on and no key exists: every call but health is refused; set "
                "INFERD_ADMIN_KEY, or run `inferd keys create --role admin --registry-url "
                "%s`, or pass --auth off on a trusted network", settings.resolved_registry_url,
            )  # fmt: skip
        guard = Guard(
            store, bootstrap_keys(admins), metrics_auth=settings.metrics_auth,
            key_rate=settings.key_rate_limit, key_burst=settings.key_rate_burst,
            client_rate=settings.client_rate_limit, client_burst=settings.client_rate_burst,
            max_concurrent=settings.max_concurrent_per_key, jwt=verifier,
        )  # fmt: skip
        return cls(guard, limits, mode, store)

    async def start(self, poll_s: float, tasks: set[asyncio.Task[None]]) -> None:
        """Load the keys before the first request, then keep them fresh in a task."""
        if self.guard is None:
            return
        try:
            await asyncio.to_thread(self.store.registry.migrate)
            await asyncio.to_thread(self.guard.refresh)
        except RegistryUnavailable as err:
            logger.error("API keys not loaded (%s); only the admin key works", err.message)
        task = asyncio.create_task(self.guard.run(poll_s))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def refresh(self) -> None:
        """Reload the keys now (blocking), after a change made through this process."""
        if self.guard is not None:
            self.guard.refresh()

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [] if self.guard is None else [AuthInterceptor(self.guard)]


def _has_keys(store: KeyStore) -> bool:
    try:
        return bool(store.active())
    except RegistryUnavailable:
        return True  # cannot tell: fail closed


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context = ServicerContext  # what either gRPC core hands a handler


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the API key in the call metadata, then the model each request message names.

    Args:
        guard: the process's guard.
    """

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        method: str = details.method
        group = classify_grpc(method)
        if handler is None or group is Group.OPEN:
            return handler
        token = _grpc_token(details.invocation_metadata)
        if handler.unary_unary is not None:
            return self._unary(handler, method, group, token)
        if handler.stream_stream is not None:
            return self._stream(handler, method, group, token)
        return handler

    def _admit(self, method: str, group: Group, token: str | None, request: Any,
               context: Context) -> ApiKey | None:  # fmt: skip
        model = grpc_model(group, method, request)
        return self.guard.admit(token, group, model, _peer_host(context.peer()))

    def _unary(self, handler: Handler, method: str, group: Group, token: str | None) -> Handler:
        inner: Any = handler.unary_unary  # an async function (grpc.aio handler types)

        async def guarded(request: Any, context: Context) -> Any:
            try:
                key = self._admit(method, group, token, request, context)
            except InferdError as err:
                code, details, trailers = grpc_status(err)
                await context.abort(code, details, trailers)
            try:
                return await inner(request, context)
            finally:
                if key is not None:
                    self.guard.release(key)

        return grpc.unary_unary_rpc_method_handler(
            guarded, handler.request_deserializer, handler.response_serializer
        )

    def _stream(self, handler: Handler, method: str, group: Group, token: str | None) -> Handler:
        inner: Any = handler.stream_stream
        guard = self.guard

        async def guarded(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            try:
                key = guard.admit(token, group, None, _peer_host(context.peer()))
            except InferdError as err:
                code, details, trailers = grpc_status(err)
                await context.abort(code, details, trailers)
            assert key is not None

            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    guard.check_model(key, request.model_name)  # ends the stream if refused
                    yield request

            try:
                async for response in inner(checked(), context):
                    yield response
            except InferdError as err:
                code, details, trailers = grpc_status(err)
                await context.abort(code, details, trailers)
            finally:
                guard.release(key)

        return grpc.stream_stream_rpc_method_handler(
            guarded, handler.request_deserializer, handler.response_serializer
        )


def _peer_host(peer: str | None) -> str | None:
    """``ipv4:1.2.3.4:5`` / ``ipv6:[::1]:5`` -> the address without the port (grpcio writes
    ``ipv6:%5B::1%5D:5``: percent-encoded brackets, decoded here)."""
    if not peer:
        return None
    _, _, rest = urllib.parse.unquote(peer).partition(":")
    return rest.rsplit(":", 1)[0] if rest else peer
