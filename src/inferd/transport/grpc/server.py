"""The gRPC server of one process: a gRPC transport with health checking and reflection.

It serves the method handlers it is given (the API layer's, :mod:`inferd.api.grpc`) on
inferd's own HTTP/2 transport (:mod:`inferd.transport.grpc.native`), which takes grpc.aio's
handlers and interceptors; the standard health checking service (``grpc.health.v1.Health``,
SERVING once ``ready()`` says so) and server reflection run beside them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from inferd.errors import ConfigError
from inferd.protocol._gen import grpc_service_pb2, model_config_pb2
from inferd.transport.grpc.native import GrpcTransportServer

_HEALTH_POLL_S = 0.5
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
Handlers = Mapping[str, Mapping[str, "grpc.RpcMethodHandler[Any, Any]"]]


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
        ssl_context: TLS (with ALPN ``h2``); None listens in plain text.
        max_connections: connections served at once (``--max-connections``).
        request_read_timeout_s: how long a unary call's request may take to arrive whole.
        max_buffered_bytes: request bytes still arriving held at most, over all connections.
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
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 2048,
        request_read_timeout_s: float = 30.0,
        max_buffered_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._ready = ready
        self._services = tuple(services)
        self.host = host
        self.port = port
        self._reuse_port = reuse_port
        self._ssl = ssl_context
        self._server = GrpcTransportServer(
            interceptors=interceptors or (), max_message_bytes=max_message_bytes,
            max_connections=max_connections, request_read_timeout_s=request_read_timeout_s,
            max_buffered_bytes=max_buffered_bytes,
        )  # fmt: skip
        for name, handlers in services.items():
            self._server.add_registered_method_handlers(name, dict(handlers))
        self._health = health.aio.HealthServicer()
        # Typed for grpc.aio.Server; it only calls the two add_*_handlers methods ours has.
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
            self.port = await self._server.start(
                self.host, self.port, ssl_context=self._ssl, reuse_port=self._reuse_port
            )
        except OSError as err:
            address = f"{_bracket(self.host)}:{self.port}"
            problem = f"cannot listen on {address} ({err}); pass a free port with --grpc-port"
            raise ConfigError("settings", "grpc_port", problem) from err
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


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
