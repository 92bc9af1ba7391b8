"""gRPC over inferd's own HTTP/2 connections (:mod:`inferd.transport.grpc.http2`), on asyncio.

:class:`GrpcTransportServer` takes the same method handlers, generic handlers and server
interceptors as a ``grpc.aio`` server (``grpc.unary_unary_rpc_method_handler`` and friends,
``add_registered_method_handlers``, ``add_generic_rpc_handlers``), and hands handlers a
:class:`ServicerContext` with the ``grpc.aio`` context methods they use (``abort``, ``peer``,
``time_remaining``, ``invocation_metadata``, ``write``, ``set_code`` ...). So the standard
health and reflection servicers run on it unchanged. The wire format is the gRPC over HTTP/2
protocol: length-prefixed messages (identity, gzip or deflate on the way in), ``grpc-timeout``
deadlines, ``grpc-status`` / ``grpc-message`` trailers (trailers-only for an error before any
message), ``-bin`` metadata in base64.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Sequence
from typing import Any

import grpc

from inferd.transport.grpc._arrivals import ArrivalGate
from inferd.transport.grpc._call import (
    ACCEPT_ENCODING,
    GRPC_HEAD,
    CallDetails,
    CallPolicy,
    Handler,
    ServicerContext,
    metadata_value,
    parse_timeout,
    status_block,
)
from inferd.transport.grpc._compression import WBITS
from inferd.transport.grpc._h2_limits import Http2Limits, Penalties
from inferd.transport.grpc._h2_wire import ENHANCE_YOUR_CALM, Stream
from inferd.transport.grpc.http2 import Http2Connection

# The longest a new connection waits for the ArrivalGate: well inside the HTTP/2 handshake
# timeout, so a connection let in late still has its handshake time.
ARRIVAL_WAIT_S = 1.0


def _never(delay: float, callback: Any) -> None:
    raise RuntimeError("the arrival gate schedules nothing before the server starts")


class _Headers:
    """What a request's headers say, for the gRPC layer."""

    __slots__ = ("content_type", "encoding", "metadata", "path", "timeout", "verb")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Raises ValueError for a ``-bin`` metadata value that is not base64."""
        self.path = self.verb = self.content_type = self.timeout = self.encoding = None
        metadata: list[tuple[str, str | bytes]] = []
        for name, value in headers:
            if name[:1] == b":":
                if name == b":path":
                    self.path = value
                elif name == b":method":
                    self.verb = value
            elif name == b"content-type":
                self.content_type = value
            elif name == b"grpc-timeout":
                self.timeout = value
            elif name == b"grpc-encoding":
                self.encoding = value
            elif name != b"te" and not name.startswith(b"grpc-"):
                key = name.decode("latin-1")
                metadata.append((key, metadata_value(key, value)))
        self.metadata = tuple(metadata)


class GrpcConnection(Http2Connection):
    """One client connection: each HTTP/2 stream is a gRPC call.

    Every few seconds (:meth:`_housekeeping`) unary calls whose request has not arrived whole
    within ``request_read_timeout_s`` are ended (a slow client cannot hold a call open), a
    connection whose answers have waited that long for a window the peer never opens is
    ended (GOAWAY ENHANCE_YOUR_CALM), and a connection without calls for ``idle_timeout_s``
    is told GOAWAY and closed.
    """

    def __init__(self, server: GrpcTransportServer) -> None:
        super().__init__(server.limits)
        self.server = server
        self._clock = server.limits.clock
        self.active = self._clock()  # when a call last ran
        self._stalled_since = self.active
        self._drains_seen = 0
        self._tick: asyncio.TimerHandle | None = None
        self._address: str | None = None  # the peer's host, for the server's Penalties
        self._held = False  # waiting for the server's ArrivalGate, its reading paused
        self._early: bytes = b""  # what arrived before the pause took effect (uvloop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.server.admit(self):
            self._address = None  # refused for the server's cap, not for what it did
            self.fail(ENHANCE_YOUR_CALM, f"more than {self.server.max_connections} connections")
            return
        verdict = self.server.arrivals.arrive(self)
        if verdict is False:
            self._address = None  # refused for everyone's arrival rate, not for what it did
            rate = self.server.arrivals.rate
            self.fail(ENHANCE_YOUR_CALM, f"new connections arrive faster than {rate:g}/s")
            return
        if verdict is None:  # its turn comes as the gate's tokens do (let_in)
            self._held = True
            transport.pause_reading()  # type: ignore[attr-defined]
        peer = self.peer
        self._address = str(peer[0]) if peer else None
        if self._address is not None:
            penalties = self.server.penalties
            factor = penalties.allowance(self._address)
            if factor < 1.0:
                self.restrict(factor, penalties.floor)
        self._tick = self._loop.call_later(self.server.tick_s, self._housekeeping)

    @property
    def gone(self) -> bool:
        """Closed, or closing (for the ArrivalGate: skip it)."""
        return self._closed or self.transport is None or self.transport.is_closing()

    def data_received(self, data: bytes) -> None:
        if self._held:
            # uvloop starts reading after connection_made returns, so the pause made there
            # may not hold: keep the one read that got through and pause again.
            self._early += data
            self.transport.pause_reading()  # type: ignore[union-attr]
            return
        super().data_received(data)

    def let_in(self) -> None:
        """The ArrivalGate's turn: start reading what the peer sent while it waited."""
        self._held = False
        if self.gone:
            return
        early, self._early = self._early, b""
        if early:
            super().data_received(early)
        if not self._paused and not self.gone:
            self.transport.resume_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        if self._held:  # the peer reads our preface: still not our turn to read its bytes
            self._paused = False
            return
        super().resume_writing()

    def fail(self, code: int, message: str) -> None:
        if code == ENHANCE_YOUR_CALM and self._address is not None and not self._closed:
            self.server.penalties.strike(self._address)
        super().fail(code, message)
        self.server.ending(self)  # no longer counted while its GOAWAY is flushed

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tick is not None:
            self._tick.cancel()
        super().connection_lost(exc)
        self.server.closed(self)

    def _housekeeping(self) -> None:
        now = self._clock()
        timeout = self.server.request_read_timeout_s
        for stream in list(self.streams.values()):
            call: ServicerContext | None = stream.app
            if call is not None and call.waiting_since(now - timeout):
                call.refuse_slow(timeout)
        if not self.waiting_bytes or self.drains != self._drains_seen:
            self._stalled_since, self._drains_seen = now, self.drains
        elif now - self._stalled_since > timeout:
            problem = f"{self.waiting_bytes} bytes of answers waited {timeout:g} s for window"
            return self.fail(ENHANCE_YOUR_CALM, problem)
        if self.streams:
            self.active = now
        elif now - self.active > self.server.idle_timeout_s:
            self.goaway()  # no calls: closes at once; the client reconnects when it needs to
            return
        self._tick = self._loop.call_later(self.server.tick_s, self._housekeeping)

    def on_request(self, stream: Stream, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        self.active = self._clock()
        try:
            head = _Headers(headers)
        except ValueError as err:
            status = status_block(grpc.StatusCode.INVALID_ARGUMENT, str(err), ())
            return self.send_headers(stream, GRPC_HEAD + status, end=True)
        if head.verb != b"POST":
            return self.send_headers(stream, b"\x08\x03405", end=True)
        if head.content_type is None or not head.content_type.startswith(b"application/grpc"):
            return self.send_headers(stream, b"\x08\x03415", end=True)
        method = (head.path or b"").decode("latin-1")
        handler = self.server.handler_for(method)
        deadline = None
        if head.timeout is not None and (seconds := parse_timeout(head.timeout)) is not None:
            deadline = self.active + seconds
        wbits = None
        if head.encoding is not None and head.encoding != b"identity":
            wbits = WBITS.get(head.encoding)
            if wbits is None:
                problem = f"unsupported grpc-encoding {head.encoding!r}"
                status = status_block(grpc.StatusCode.UNIMPLEMENTED, problem, ())
                return self.send_headers(stream, GRPC_HEAD + ACCEPT_ENCODING + status, end=True)
        if handler is None:
            status = status_block(grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {method}", ())
            return self.send_headers(stream, GRPC_HEAD + status, end=True)
        call = ServicerContext(
            self, self.server.policy, stream, method, handler, head.metadata, deadline, wbits
        )
        stream.app = call
        if handler.request_streaming:
            call.start()
        if end:
            call.received(b"", True)

    def on_data(self, stream: Stream, data: bytes, end: bool) -> None:
        call: ServicerContext | None = stream.app
        if call is not None:
            call.received(data, end)

    def on_reset(self, stream: Stream) -> None:
        call: ServicerContext | None = stream.app
        if call is not None:
            stream.app = None  # no cycle left for the collector (Http2Connection._end_stream)
            call.cancel()


class GrpcTransportServer:
    """A gRPC server on asyncio with the registration API of ``grpc.aio.Server``.

    Args:
        interceptors: ``grpc.aio.ServerInterceptor`` instances, run per call in order.
        max_message_bytes: largest request and response message (RESOURCE_EXHAUSTED above).
        max_connections: connections served at once; more are told GOAWAY and closed.
        request_read_timeout_s: a unary call's request must arrive whole within this long
            (DEADLINE_EXCEEDED after).
        idle_timeout_s: a connection without calls this long is closed.
        max_buffered_bytes: request bytes of messages still arriving held at most, over all
            connections (at least ``max_message_bytes``); a call that would go past it gets
            RESOURCE_EXHAUSTED, so slow or hostile senders cannot fill the memory.
        max_new_connections_per_s: new connections taken per second after a burst of
            ``max_connections`` (or twice the rate, if more); the others wait (at most 1 s)
            or are refused, so that a churn of short-lived connections cannot starve the
            connected clients (:mod:`._arrivals`); 0 takes every connection at once.
        new_connection_burst: that burst, when not the default.
        limits: each connection's HTTP/2 limits and budgets against abuse; the defaults
            when None, with answers held for a peer that does not read bounded by one
            largest message and 16 MiB more.
    """

    def __init__(
        self, *, interceptors: Sequence[Any] = (), max_message_bytes: int = 64 * 1024 * 1024,
        max_connections: int = 2048, request_read_timeout_s: float = 30.0,
        idle_timeout_s: float = 300.0, max_buffered_bytes: int = 512 * 1024 * 1024,
        limits: Http2Limits | None = None, max_new_connections_per_s: float = 200.0,
        new_connection_burst: int | None = None,
    ) -> None:  # fmt: skip
        self.policy = CallPolicy(interceptors, max_message_bytes, max_buffered_bytes)
        self.limits = limits or Http2Limits(max_pending_bytes=max_message_bytes + (16 << 20))
        self.max_connections = max_connections
        limits = self.limits
        self.penalties = Penalties(
            limits.strike_half_life_s, limits.max_penalised, limits.penalised_floor, limits.clock
        )
        self.request_read_timeout_s = request_read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.tick_s = min(5.0, request_read_timeout_s / 2, idle_timeout_s / 2)
        # Insertion-ordered: the oldest first, which is the one closed to make room.
        self.connections: dict[GrpcConnection, None] = {}
        self._ending: set[GrpcConnection] = set()  # ended for abuse, flushing their GOAWAY
        self._methods: dict[str, Handler] = {}
        self._generic: list[Any] = []
        self._server: asyncio.Server | None = None
        self._all_closed: asyncio.Event | None = None  # set by stop(), for its grace period
        self.max_new_connections_per_s = max_new_connections_per_s
        self.new_connection_burst = new_connection_burst
        self.arrivals = ArrivalGate(0.0, 1, 0.0, limits.clock, _never)  # until start()

    @property
    def buffered(self) -> int:
        """Bytes of incomplete request messages held now, over all connections."""
        return self.policy.buffered

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        """Serve ``/<service>/<name>`` with each handler."""
        for name, handler in handlers.items():
            self._methods[f"/{service}/{name}"] = handler

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[Any]) -> None:
        """Consult ``grpc.GenericRpcHandler``s for methods not registered by name."""
        self._generic.extend(generic_handlers)

    def admit(self, conn: GrpcConnection) -> bool:
        """Count a new connection in; at the cap, first close the oldest one without calls
        (as nghttp2 and Go do: idle connections must not keep new clients out). False when
        every connection has calls running: the new one is refused."""
        if len(self.connections) >= self.max_connections:
            idle = self._idlest()
            if idle is None:
                return False
            self.closed(idle)
            idle.goaway()  # no calls: it closes at once; a client reconnects when it needs to
        self.connections[conn] = None
        return True

    def _idlest(self) -> GrpcConnection | None:
        """The oldest connection that never opened a stream, else the one without calls
        for longest; None when every connection has calls running."""
        idlest: GrpcConnection | None = None
        for conn in self.connections:  # oldest first
            if conn.streams:
                continue
            if not conn.used:
                return conn
            if idlest is None or conn.active < idlest.active:
                idlest = conn
        return idlest

    def ending(self, conn: GrpcConnection) -> None:
        """A connection ended for abuse: it no longer counts against the cap."""
        self.connections.pop(conn, None)
        self._ending.add(conn)

    def closed(self, conn: GrpcConnection) -> None:
        """A connection has closed."""
        self.connections.pop(conn, None)
        self._ending.discard(conn)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    def handler_for(self, method: str) -> Handler | None:
        """The handler for a method path, or None (UNIMPLEMENTED)."""
        handler = self._methods.get(method)
        if handler is None:
            for generic in self._generic:
                handler = generic.service(CallDetails(method, ()))
                if handler is not None:
                    break
        return handler

    async def start(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> int:  # fmt: skip
        """Listen; return the bound port. Raises OSError when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        rate = self.max_new_connections_per_s
        # The burst: every client reconnecting at once after a restart (a full house of
        # connections) goes in unthrottled; the rate bounds a sustained churn after it.
        burst = self.new_connection_burst or max(1, math.ceil(2 * rate), self.max_connections)
        self.arrivals = ArrivalGate(rate, burst, ARRIVAL_WAIT_S, self.limits.clock, loop.call_later)
        self._server = await loop.create_server(
            lambda: GrpcConnection(self), host, port,
            ssl=ssl_context, reuse_port=reuse_port or None, backlog=2048,
        )  # fmt: skip
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace_s: float) -> None:
        """Stop listening, let running calls finish for ``grace_s`` seconds, cancel the rest."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.goaway()
        # A connection told GOAWAY closes once its last call ends (Http2Connection._forget).
        self._all_closed = asyncio.Event()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace_s)
        for conn in list(self.connections):
            for stream in list(conn.streams.values()):
                conn.reset(stream)
                conn.on_reset(stream)
            conn.close()
        for conn in list(self._ending):
            conn.abort()
        self.policy.inflater.close()
        if self._server is not None:
            await self._server.wait_closed()
