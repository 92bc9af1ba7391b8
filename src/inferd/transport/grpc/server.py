"""The gRPC server of one process: a gRPC core with health checking and reflection.

It serves the method handlers it is given (the API layer's, :mod:`inferd.api.grpc`) on one
of two cores, which take the same grpc.aio handlers and interceptors:

- ``native`` (the default): inferd's own HTTP/2 transport on asyncio
  (:mod:`inferd.transport.grpc.native`), which holds under the attack suite in
  ``tests/fixtures/h2_attacks.py`` (GOAWAY for every flood, bounded memory, abuse
  remembered per address) and costs the server 4-6x less CPU per call;
- ``grpcio``: grpcio's C-core server (:mod:`inferd.transport.grpc.grpcio`), the HTTP/2
  implementation the reference gRPC servers run, which sends no GOAWAY for seven of the
  flood classes (docs/security.md has both side by side).

The standard health checking service (``grpc.health.v1.Health``, SERVING once ``ready()``
says so) and server reflection run beside the handlers on either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from inferd.errors import ConfigError
from inferd.protocol._gen import grpc_service_pb2, model_config_pb2
from inferd.transport.grpc.grpcio import GrpcioServer
from inferd.transport.grpc.native import GrpcTransportServer
from inferd.transport.grpc.tls import ServerTls

logger = logging.getLogger(__name__)

_HEALTH_POLL_S = 0.5
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
Handlers = Mapping[str, Mapping[str, "grpc.RpcMethodHandler[Any, Any]"]]
Transport = Literal["grpcio", "native"]


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    # Our messages live in a private pool (see scripts/gen_grpc.sh); reflection needs one pool
    # holding every service it names.
    pool = descriptor_pool.DescriptorPool()
    for module in (model_config_pb2, grpc_service_pb2, health_pb2, reflection_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)  # type: ignore[no-untyped-call]
    return pool


class GrpcServer:
    """The gRPC server of one process, with health checking and reflection.

    Args:
        services: service name -> method name -> handler (``grpc.*_rpc_method_handler``).
        ready: whether the services are ready; health checking reports it for each.
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see :attr:`port` after start).
        max_message_bytes: largest request and response message; larger ones get
            RESOURCE_EXHAUSTED.
        reuse_port: let several processes listen on the port (``--workers N``). Off for one
            process, so that a port already in use fails the start instead of being shared.
        interceptors: ``grpc.aio`` server interceptors (authentication); none by default.
        tls: the certificate and key (and CA, for client certificates); None listens in
            plain text.
        max_connections: native only: connections served at once (``--max-connections``);
            grpcio caps them at half the file descriptor limit (see :mod:`.grpcio`).
        request_read_timeout_s: native: how long a unary call's request may take to arrive
            whole; grpcio: how long a connection's handshake may take (at most 5 s).
        max_buffered_bytes: native only: request bytes still arriving held at most, over
            all connections (grpcio has no such budget; see :mod:`.grpcio`).
        max_new_connections_per_s: native only: new connections taken per second after a
            burst of twice as many, the rest waiting (:mod:`._arrivals`); 0 for no limit.
        transport: the core, ``native`` (the default) or ``grpcio``.
    """

    def __init__(
        self,
        services: Handlers,
        ready: Callable[[], bool],
        host: str,
        port: int,
        *,
        max_message_bytes: int = 64 * 1024 * 1024,
        reuse_port: bool = False,
        interceptors: list[grpc.aio.ServerInterceptor] | None = None,
        tls: ServerTls | None = None,
        max_connections: int = 2048,
        request_read_timeout_s: float = 30.0,
        max_buffered_bytes: int = 512 * 1024 * 1024,
        max_new_connections_per_s: float = 200.0,
        transport: Transport = "native",
    ) -> None:
        self._ready = ready
        self._services = tuple(services)
        self.host = host
        self.port = port
        self.transport = transport
        self._reuse_port = reuse_port
        self._tls = tls
        self._server = _core(
            transport, interceptors or (), max_message_bytes=max_message_bytes,
            max_connections=max_connections, request_read_timeout_s=request_read_timeout_s,
            max_buffered_bytes=max_buffered_bytes,
            max_new_connections_per_s=max_new_connections_per_s,
        )  # fmt: skip
        for name, handlers in services.items():
            self._server.add_registered_method_handlers(name, dict(handlers))
        self._health = health.aio.HealthServicer()
        # Typed for grpc.aio.Server; it only calls the two add_*_handlers methods ours have.
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)  # type: ignore[arg-type]
        names = (*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(  # type: ignore[no-untyped-call]
            reflection.aio.ReflectionServicer(names, pool=_reflection_pool()), self._server
        )
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start serving; return the bound port.

        Raises:
            ConfigError: the port cannot be bound.
        """
        try:
            if isinstance(self._server, GrpcioServer):
                self.port = await self._server.start(
                    self.host, self.port, tls=self._tls, reuse_port=self._reuse_port
                )
            else:
                context = self._tls.ssl_context() if self._tls is not None else None
                self.port = await self._server.start(
                    self.host, self.port, ssl_context=context, reuse_port=self._reuse_port
                )
        except OSError as err:
            address = f"{_bracket(self.host)}:{self.port}"
            problem = f"cannot listen on {address} ({err}); pass a free port with --grpc-port"
            raise ConfigError("settings", "grpc_port", problem) from err
        tls = " with TLS" if self._tls is not None else ""
        logger.info("gRPC on %s:%d%s (%s core)", self.host, self.port, tls, self.transport)
        self._watch = asyncio.create_task(self._watch_readiness())
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, give running ones ``grace_s`` seconds, then close."""
        if self._watch is not None:
            self._watch.cancel()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)

    async def _watch_readiness(self) -> None:
        serving = None
        while True:
            ready = self._ready()
            if ready != serving:
                status = _SERVING if ready else _NOT_SERVING
                for name in ("", *self._services):
                    await self._health.set(name, status)
                serving = ready
            await asyncio.sleep(_HEALTH_POLL_S)


def _core(
    transport: str, interceptors: Sequence[grpc.aio.ServerInterceptor], *, max_message_bytes: int,
    max_connections: int, request_read_timeout_s: float, max_buffered_bytes: int,
    max_new_connections_per_s: float,
) -> GrpcioServer | GrpcTransportServer:  # fmt: skip
    """The core ``transport`` names, with the limits it has."""
    if transport == "grpcio":
        # No max_connections: C-core cannot make room by closing an idle connection (.grpcio).
        return GrpcioServer(
            interceptors=interceptors,
            max_message_bytes=max_message_bytes,
            request_read_timeout_s=request_read_timeout_s,
        )
    if transport == "native":
        return GrpcTransportServer(
            interceptors=interceptors, max_message_bytes=max_message_bytes,
            max_connections=max_connections, request_read_timeout_s=request_read_timeout_s,
            max_buffered_bytes=max_buffered_bytes,
            max_new_connections_per_s=max_new_connections_per_s,
        )  # fmt: skip
    problem = f"expected 'grpcio' or 'native', got {transport!r}"
    raise ConfigError("settings", "grpc_transport", problem)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
