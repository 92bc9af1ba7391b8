"""gRPC on grpcio's C-core server (``grpc.aio.server``): the maintained, hardened HTTP/2 core.

:class:`GrpcioServer` has the registration API of :class:`~inferd.transport.grpc.native.
GrpcTransportServer` (``add_registered_method_handlers``, ``add_generic_rpc_handlers``,
``start``, ``stop``), so :class:`~inferd.transport.grpc.server.GrpcServer` serves the same
handlers, interceptors, health and reflection on either. C-core runs the HTTP/2 protocol in
its own threads and hands calls to the event loop; its answers to protocol abuse (rapid
reset, CONTINUATION and SETTINGS floods, PING floods, header lists past the metadata limit,
flow control) are built in.

inferd's limits map to channel arguments (:func:`channel_options`):

============================  ==================================================================
``max_message_bytes``         ``grpc.max_receive_message_length`` / ``max_send_message_length``
                              (RESOURCE_EXHAUSTED above)
``max_connections``           not applied: C-core cannot close an idle connection to make room
                              (the native core does), so a cap this low would let idle
                              connections keep new clients out. The cap is half the process's
                              file descriptor limit (``grpc.max_allowed_incoming_connections``),
                              which keeps descriptors for HTTP and files
``request_read_timeout_s``    ``grpc.server_handshake_timeout_ms``, at most 5 s (as the native
                              core's preface timeout): a connection must finish its TLS and
                              HTTP/2 handshake in time. C-core has no deadline on a unary
                              request arriving slowly: the flow-control window bounds what it
                              holds, the client's deadline ends the call
``idle_timeout_s``            ``grpc.max_connection_idle_ms`` (GOAWAY after it without calls)
``reuse_port``                ``grpc.so_reuseport`` (C-core's default is on: set off explicitly)
``max_buffered_bytes``        none: grpcio exposes no per-process memory budget to Python;
                              C-core holds at most one stream window of an unfinished message
                              per stream, with ``max_concurrent_streams`` streams a connection
============================  ==================================================================

Beside them, fixed: 1,000 streams per connection (as the native core), 64 KiB of metadata
(as the native core's header list limit), and C-core's ping policy (a client may ping every
10 s without sending data; the third ping sooner is answered GOAWAY ENHANCE_YOUR_CALM). No
maximum connection age: it would cut long ``ModelStreamInfer`` streams.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from typing import Any

import grpc

from inferd.transport.grpc.tls import ServerTls

Handler = Any  # grpc.RpcMethodHandler: typeshed has no usable generic for it
MAX_CONCURRENT_STREAMS = 1000
MAX_METADATA_BYTES = 64 * 1024
MIN_PING_INTERVAL_MS = 10_000
MAX_PING_STRIKES = 2
HANDSHAKE_TIMEOUT_S = 5.0


def channel_options(
    *, max_message_bytes: int, request_read_timeout_s: float, idle_timeout_s: float,
    reuse_port: bool,
) -> list[tuple[str, int]]:  # fmt: skip
    """The C-core channel arguments that carry inferd's limits (see the module docstring)."""
    handshake_s = min(request_read_timeout_s, HANDSHAKE_TIMEOUT_S)
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_allowed_incoming_connections", connection_cap()),
        ("grpc.server_handshake_timeout_ms", _ms(handshake_s)),
        ("grpc.max_connection_idle_ms", _ms(idle_timeout_s)),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
        ("grpc.keepalive_permit_without_calls", 1),  # the ping policy above, calls or not
    ]


def connection_cap() -> int:
    """Connections C-core accepts at once: half the file descriptors this process may open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 2**31 - 1
    return max(1, soft // 2)


def _ms(seconds: float) -> int:
    return max(1, min(round(seconds * 1000), 2**31 - 1))


class GrpcioServer:
    """A ``grpc.aio`` server built at :meth:`start` from what was registered before.

    Args:
        interceptors: ``grpc.aio.ServerInterceptor`` instances, run per call in order.
        max_message_bytes: largest request and response message (RESOURCE_EXHAUSTED above).
        request_read_timeout_s: how long a new connection may take over its handshake
            (at most :data:`HANDSHAKE_TIMEOUT_S`).
        idle_timeout_s: a connection without calls this long is told GOAWAY.
    """

    def __init__(
        self, *, interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        max_message_bytes: int = 64 * 1024 * 1024, request_read_timeout_s: float = 30.0,
        idle_timeout_s: float = 300.0,
    ) -> None:  # fmt: skip
        self.interceptors = list(interceptors)
        self.max_message_bytes = max_message_bytes
        self.request_read_timeout_s = request_read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._methods: list[tuple[str, dict[str, Handler]]] = []
        self._generic: list[Any] = []
        self._server: grpc.aio.Server | None = None

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        """Serve ``/<service>/<name>`` with each handler."""
        self._methods.append((service, handlers))

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[Any]) -> None:
        """Consult ``grpc.GenericRpcHandler``s for methods not registered by name."""
        self._generic.extend(generic_handlers)

    async def start(
        self, host: str, port: int, *, tls: ServerTls | None = None, reuse_port: bool = False
    ) -> int:
        """Listen; return the bound port. Raises OSError when the address cannot be bound."""
        options = channel_options(
            max_message_bytes=self.max_message_bytes,
            request_read_timeout_s=self.request_read_timeout_s,
            idle_timeout_s=self.idle_timeout_s, reuse_port=reuse_port,
        )  # fmt: skip
        server = grpc.aio.server(interceptors=self.interceptors or None, options=options)
        for service, handlers in self._methods:
            server.add_registered_method_handlers(service, handlers)
        server.add_generic_rpc_handlers(tuple(self._generic))
        bracketed = ":" in host and not host.startswith("[")
        address = f"[{host}]:{port}" if bracketed else f"{host}:{port}"
        try:
            if tls is not None:
                bound = server.add_secure_port(address, tls.credentials())
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as err:
            await server.stop(None)
            raise OSError(f"cannot bind {address}: {err}") from err
        await server.start()
        self._server = server
        return bound

    async def stop(self, grace_s: float) -> None:
        """Stop listening, let running calls finish for ``grace_s`` seconds, cancel the rest."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
