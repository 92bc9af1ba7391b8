"""Server-side HTTP/2 connections (RFC 9113), as much of it as gRPC uses, on asyncio.

Why not grpc.aio: its per-call machinery (the C core's completion queue, a poller thread that
hands every event of a call to the event loop one at a time) costs about 240 µs of CPU per
unary call on a small machine, more than uvicorn's whole HTTP/1.1 path. Here a connection is
an :class:`asyncio.Protocol` that parses frames straight from the socket buffer: the requests
multiplexed in one read reach the application in the same loop turn (so they batch), and
all frames written in a turn leave in one ``write``.

What is here: the connection preface, SETTINGS, HEADERS with CONTINUATION and padding, DATA,
flow control both ways (our windows are large and refilled as data arrives; the peer's are
honoured, with per-stream queues while they are shut), PING, RST_STREAM, GOAWAY (both ways,
graceful on shutdown), PRIORITY (ignored, as RFC 9113 allows). Header blocks are decoded by
the ``hpack`` library; responses are encoded as literals without indexing, so our encoder
keeps no table. Server push is never used.

Subclasses implement :meth:`Http2Connection.on_request`, :meth:`~Http2Connection.on_data` and
:meth:`~Http2Connection.on_reset`, and answer with :meth:`~Http2Connection.send_headers` and
:meth:`~Http2Connection.send_data`::

    asyncio.Protocol
    └── Http2Connection          frames, HPACK, flow control, streams (this module)
        └── GrpcConnection       one gRPC call per stream (transport/grpc/native.py)

A peer that stops reading what we send is not read either once ``WRITE_BUFFER_HIGH`` bytes
wait for it (``pause_writing``), and answers for it wait in their streams' queues, as they do
while its flow-control window is shut; past ``Http2Limits.max_pending_bytes`` queued, or
``max_unsent_acks`` PING/SETTINGS ACKs it has not read, the connection ends. The other
budgets against abuse (rapid reset, CONTINUATION and SETTINGS floods, frames that do no
work) are in :mod:`inferd.transport.grpc._h2_limits`; each ends the connection with GOAWAY
``ENHANCE_YOUR_CALM``. The peer's initial window is kept once per connection and each
stream's window as an offset from it, so a SETTINGS change costs O(1), not O(streams).

Why past 500 lines: the receiving state machine and the sending side (per-stream queues while
a window is shut, the write flush, the budgets' refills on what we send) share the
connection's per-frame state on the hot path. TODO(#11) move the sending side into its own
module behind a small interface, measured with bench/http2_transport.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hpack.exceptions import HPACKError

from inferd.transport.grpc import _h2_wire as wire
from inferd.transport.grpc._h2_limits import Budget, Http2Limits
from inferd.transport.grpc._h2_wire import (  # per-request names, no attribute lookup
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_HEAD,
    HEADERS,
    PRIORITY_FLAG,
    WINDOW_UPDATE,
    H2Error,
    HeaderDecoder,
    Stream,
    frame,
)

logger = logging.getLogger(__name__)

# Unsent bytes a connection may hold before it stops reading requests (pause_writing).
WRITE_BUFFER_HIGH = 4 * 1024 * 1024
# How long a connection ended for abuse may take to flush its GOAWAY before it is aborted
# (a peer that does not read would otherwise keep it, and its buffers, open).
FAIL_LINGER_S = 2.0


class Http2Connection(asyncio.Protocol):
    """The HTTP/2 server side of one connection; subclasses add the application.

    Args:
        limits: what the peer is allowed (streams, windows, frame and header sizes, the
            handshake timeout, the budgets against abuse); the defaults when None.
    """

    def __init__(self, limits: Http2Limits | None = None) -> None:
        limits = limits or Http2Limits()
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self._max_streams = limits.max_concurrent_streams
        self._window = limits.window
        self._max_frame = limits.max_frame_size
        self._decoder = HeaderDecoder(limits.max_header_list_size)
        self._buffer = bytearray()
        self._preface_seen = False
        self._settings_seen = False
        self._continuation: tuple[int, int, bytearray, int] | None = None  # id, flags, block, n
        self._last_stream = 0
        self._recv_unacked = 0
        self._send_window = wire.DEFAULT_WINDOW  # the connection's, granted by the peer
        self._peer_window = wire.DEFAULT_WINDOW  # the peer's initial window per stream
        self._peer_frame = wire.DEFAULT_FRAME
        self._blocked: dict[int, Stream] = {}  # streams with DATA waiting for window
        self._pending = 0  # bytes waiting in the streams of _blocked
        self.drains = 0  # times waiting bytes were sent: progress, for a stall timeout
        self._paused = False  # the peer does not read: answers wait in their streams
        self._acks = 0  # PING/SETTINGS ACKs queued since the write buffer was last empty
        clock = limits.clock
        self._resets = Budget(limits.reset_burst, limits.reset_rate, limits.reset_refund, clock)
        self._useless = Budget(
            limits.useless_burst, limits.useless_rate, limits.useless_refund, clock
        )
        self._served = 0  # streams that ended normally: the work that earns resets back
        # DATA frames sent: a client acknowledges what it reads with WINDOW_UPDATEs (and
        # grpc C-core probes its bandwidth with PINGs) for as long as a stream lives, so
        # each frame we send earns those frames back (a bidirectional stream opens once;
        # counting only streams opened ended perf_analyzer --streaming within a second).
        self._data_sent = 0
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._goaway_sent = False
        self._closed = self._lost = False
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)  # type: ignore[attr-defined]
        self._write(
            wire.server_preface(
                self._max_streams, self._window, self._max_frame, self._decoder.max_header_list_size
            )
        )
        self._loop.call_later(self.limits.handshake_timeout_s, self._check_handshake)

    def pause_writing(self) -> None:
        # The peer is not reading what we send: stop reading its requests until it does, and
        # keep new answers in their streams (bounded by max_pending_bytes), so that they
        # cannot pile up in memory (what uvicorn does for HTTP/1.1).
        self._paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._unblock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = self._lost = True
        self._end_streams()

    def _end_streams(self) -> None:
        streams, self.streams = list(self.streams.values()), {}
        self._blocked.clear()
        self._pending = 0
        for stream in streams:
            self.on_reset(stream)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return  # ended (fail): dropped unread
        if self._buffer:
            self._buffer += data
            buf: bytes | bytearray = self._buffer
        else:
            buf = data
        pos = 0
        if not self._preface_seen:
            if len(buf) < len(wire.PREFACE):
                if not wire.PREFACE.startswith(bytes(buf)):
                    self._drop()
                elif not self._buffer:
                    self._buffer += buf
                return
            if buf[: len(wire.PREFACE)] != wire.PREFACE:
                self._drop()  # not an HTTP/2 client (HTTP/1.1 to the gRPC port, or garbage)
                return
            self._preface_seen = True
            pos = len(wire.PREFACE)
        end = len(buf)
        try:
            while end - pos >= 9:
                high, low, kind, flags, stream_id = FRAME_HEAD.unpack_from(buf, pos)
                length = high << 16 | low
                if length > self._max_frame:
                    raise H2Error(
                        wire.FRAME_SIZE_ERROR, f"frame of {length} bytes > {self._max_frame}"
                    )
                stop = pos + 9 + length
                if stop > end:
                    break
                self._frame(kind, flags, stream_id & wire.MAX_WINDOW, bytes(buf[pos + 9 : stop]))
                pos = stop
                if self._closed:
                    return
        except H2Error as err:
            self.fail(err.code, str(err))
            return
        except Exception:  # a bug of ours: this connection ends, the server goes on
            logger.exception("HTTP/2 connection from %s failed", self.peer)
            self.fail(wire.INTERNAL_ERROR, "internal error")
            return
        if pos == end:
            self._buffer.clear()
        elif buf is self._buffer:
            del self._buffer[:pos]
        else:
            self._buffer += buf[pos:]

    # -- for subclasses ----------------------------------------------------------------------

    def on_request(self, stream: Stream, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        """A new stream's request headers arrived (``end``: and no body follows)."""
        raise NotImplementedError

    def on_data(self, stream: Stream, data: bytes, end: bool) -> None:
        """Body bytes of a stream arrived (``end``: the last of them)."""
        raise NotImplementedError

    def on_reset(self, stream: Stream) -> None:
        """The stream is gone before we ended it: reset by the peer, or the connection lost."""
        raise NotImplementedError

    def send_headers(self, stream: Stream, block: bytes, end: bool = False) -> None:
        """Send an HPACK header block; ``end`` ends the stream (trailers, or trailers-only)."""
        if stream.local_closed:
            return
        if end and stream.pending:
            stream.pending_end = block  # after the DATA still waiting for window
            return
        flags = END_STREAM if end else 0
        limit = self._peer_frame
        if len(block) <= limit:
            self._write(frame(HEADERS, flags | END_HEADERS, stream.id, block))
        else:
            self._write(frame(HEADERS, flags, stream.id, block[:limit]))
            for i in range(limit, len(block), limit):
                last = END_HEADERS if i + limit >= len(block) else 0
                self._write(frame(wire.CONTINUATION, last, stream.id, block[i : i + limit]))
        if end:
            self._end_stream(stream)

    def send_data(self, stream: Stream, data: bytes) -> None:
        """Send body bytes, as flow control allows now; the rest follows as windows open."""
        if stream.local_closed or not data:
            return
        sent = 0 if stream.pending or self._paused else self._send_now(stream, data)
        if sent < len(data):
            stream.pending += data[sent:] if sent else data
            self._blocked[stream.id] = stream
            self._pending += len(data) - sent
            if self._pending > self.limits.max_pending_bytes:
                self.fail(
                    wire.ENHANCE_YOUR_CALM,
                    f"{self._pending} bytes of answers wait for a peer that does not read or "
                    f"grant window, more than {self.limits.max_pending_bytes}",
                )  # fmt: skip

    def reset(self, stream: Stream, code: int = wire.CANCEL) -> None:
        """End the stream with wire.RST_STREAM."""
        if not stream.local_closed:
            self._write(frame(wire.RST_STREAM, 0, stream.id, code.to_bytes(4)))
            stream.local_closed = True
        self._forget(stream)

    def goaway(self) -> None:
        """Graceful shutdown: take no new streams; close once the open ones have ended."""
        if self._closed or self._goaway_sent:
            return
        self._goaway_sent = True
        self._write(
            frame(wire.GOAWAY, 0, 0, self._last_stream.to_bytes(4) + wire.NO_ERROR.to_bytes(4))
        )
        if not self.streams:
            self._close_after_flush()

    def close(self) -> None:
        """Close now (after what is already queued is written)."""
        self._close_after_flush()

    def restrict(self, factor: float, floor: int) -> None:
        """Start the budgets against abuse with ``factor`` of their tokens, at least ``floor``
        (a peer whose address was caught abusing before: see :class:`Penalties`)."""
        self._resets.shrink(factor, floor)
        self._useless.shrink(factor, floor)

    @property
    def used(self) -> bool:
        """Whether the peer has opened a stream yet."""
        return self._last_stream > 0

    @property
    def waiting_bytes(self) -> int:
        """Answer bytes waiting for the peer's window (or for the peer to read)."""
        return self._pending

    @property
    def peer(self) -> tuple[Any, ...] | None:
        """The peer's socket address."""
        return self.transport.get_extra_info("peername") if self.transport else None

    # -- frames ------------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is not None and kind != wire.CONTINUATION:
            raise H2Error(wire.PROTOCOL_ERROR, "expected a CONTINUATION frame")
        if kind == DATA:
            self._on_data_frame(flags, stream_id, payload)
        elif kind == HEADERS:
            self._on_headers_frame(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == wire.SETTINGS:
            self._useless_frame("SETTINGS")
            self._on_settings(flags, stream_id, payload)
        elif kind == wire.PING:
            self._useless_frame("PING")
            if stream_id != 0 or len(payload) != 8:
                raise H2Error(wire.PROTOCOL_ERROR, "malformed PING")
            if not flags & wire.ACK:
                self._ack(frame(wire.PING, wire.ACK, 0, payload))
        elif kind == wire.RST_STREAM:
            self._on_reset_frame(stream_id, payload)
        elif kind == wire.CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif kind == wire.GOAWAY:
            self._goaway_sent = True  # the peer leaves: take no new streams either
            if not self.streams:
                self._close_after_flush()
        elif kind == wire.PUSH_PROMISE:
            raise H2Error(wire.PROTOCOL_ERROR, "clients must not push")
        else:  # PRIORITY and unknown types are ignored (RFC 9113 sections 5.3.2 and 5.5)
            self._useless_frame("PRIORITY" if kind == wire.PRIORITY else f"type {kind}")

    def _useless_frame(self, name: str) -> None:
        """Count a frame that does no work: a flood of them ends the connection."""
        # Work: the streams opened and the DATA frames sent (which the peer acknowledges).
        if not self._useless.spend((self._last_stream >> 1) + self._data_sent):
            raise H2Error(
                wire.ENHANCE_YOUR_CALM,
                f"too many frames that do no work ({name}): more than "
                f"{self.limits.useless_burst} at once or {self.limits.useless_rate:g}/s",
            )

    def _ack(self, data: bytes) -> None:
        """Queue a PING or SETTINGS ACK; a peer that sends them faster than it reads them
        (they pile up here) is ended (nghttp2 and Go bound queued control frames too)."""
        self._acks += 1
        if self._acks > self.limits.max_unsent_acks:
            raise H2Error(
                wire.ENHANCE_YOUR_CALM,
                f"more than {self.limits.max_unsent_acks} PING/SETTINGS ACKs not read",
            )
        self._write(data)

    def _on_reset_frame(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or len(payload) != 4:
            raise H2Error(wire.PROTOCOL_ERROR, "malformed RST_STREAM")
        stream = self.streams.get(stream_id)
        if stream is None:
            self._useless_frame("RST_STREAM of a closed stream")
            return
        self._spend_reset("reset by the client")
        stream.local_closed = True
        self._forget(stream)
        self.on_reset(stream)

    def _spend_reset(self, what: str) -> None:
        """Count a stream the peer reset or had refused (rapid reset, CVE-2023-44487)."""
        if not self._resets.spend(self._served):
            raise H2Error(
                wire.ENHANCE_YOUR_CALM,
                f"too many streams {what}: more than {self.limits.reset_burst} at once or "
                f"{self.limits.reset_rate:g}/s beyond the streams that ended normally",
            )

    def _on_headers_frame(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise H2Error(wire.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        block = wire.unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            block = block[5:]
        if flags & END_HEADERS:
            self._on_header_block(stream_id, flags, block)
        else:
            self._continuation = (stream_id, flags, bytearray(block), 0)

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is None or self._continuation[0] != stream_id:
            raise H2Error(wire.PROTOCOL_ERROR, "unexpected CONTINUATION")
        _, first_flags, block, count = self._continuation
        block += payload
        if len(block) > self._decoder.max_header_list_size * 2:
            raise H2Error(wire.PROTOCOL_ERROR, "header block too large")
        if count >= self.limits.max_continuations:  # empty ones would never grow the block
            raise H2Error(
                wire.ENHANCE_YOUR_CALM,
                f"more than {self.limits.max_continuations} CONTINUATION frames in a header block",
            )
        if flags & END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, first_flags, bytes(block))
        else:
            self._continuation = (stream_id, first_flags, block, count + 1)

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)
        except HPACKError as err:
            raise H2Error(
                wire.COMPRESSION_ERROR, f"cannot decode the header block ({err})"
            ) from err
        end = bool(flags & END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client end its half of the stream
            if not end or stream.remote_closed:
                raise H2Error(wire.PROTOCOL_ERROR, f"HEADERS in the middle of stream {stream_id}")
            stream.remote_closed = True
            self.on_data(stream, b"", True)
            return
        if stream_id <= self._last_stream:
            self._write(frame(wire.RST_STREAM, 0, stream_id, wire.STREAM_CLOSED.to_bytes(4)))
            return
        self._last_stream = stream_id
        if self._goaway_sent or len(self.streams) >= self._max_streams:
            self._spend_reset("refused")
            self._write(frame(wire.RST_STREAM, 0, stream_id, wire.REFUSED_STREAM.to_bytes(4)))
            return
        stream = Stream(stream_id)
        stream.remote_closed = end
        self.streams[stream_id] = stream
        self.on_request(stream, headers, end)

    def _on_data_frame(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2Error(wire.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)  # flow control counts padding too
        payload = wire.unpad(flags, payload)
        self._recv_unacked += size
        if self._recv_unacked > self._window:
            raise H2Error(wire.FLOW_CONTROL_ERROR, "the peer sent more than the connection window")
        if self._recv_unacked >= self._window // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, self._recv_unacked.to_bytes(4)))
            self._recv_unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self._last_stream:
                raise H2Error(wire.PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            self._useless_frame("DATA of a closed stream")
            return  # a stream we ended or reset: its late frames are ignored (section 5.1)
        end = bool(flags & END_STREAM)
        if not payload and not end:
            self._useless_frame("empty DATA")
        if end:
            stream.remote_closed = True
        else:
            stream.recv_unacked += size
            if stream.recv_unacked > self._window:
                self.reset(stream, wire.FLOW_CONTROL_ERROR)
                self.on_reset(stream)
                return
            if stream.recv_unacked >= self._window // 2:
                self._write(frame(WINDOW_UPDATE, 0, stream_id, stream.recv_unacked.to_bytes(4)))
                stream.recv_unacked = 0
        self.on_data(stream, payload, end)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2Error(wire.PROTOCOL_ERROR, "wire.SETTINGS on a stream")
        if flags & wire.ACK:
            return
        if len(payload) % 6:
            raise H2Error(wire.FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        if len(payload) > 6 * self.limits.max_settings:
            raise H2Error(
                wire.ENHANCE_YOUR_CALM,
                f"SETTINGS with {len(payload) // 6} entries, more than {self.limits.max_settings}",
            )
        self._settings_seen = True
        grown = False
        for ident, value in wire.SETTING.iter_unpack(payload):
            if ident == wire.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > wire.MAX_WINDOW:
                    raise H2Error(wire.FLOW_CONTROL_ERROR, "initial window above 2^31-1")
                # Streams keep their window as an offset from this one: O(1), not O(streams).
                grown, self._peer_window = value > self._peer_window, value
            elif ident == wire.SETTINGS_MAX_FRAME_SIZE:
                if not wire.DEFAULT_FRAME <= value <= 2**24 - 1:
                    raise H2Error(wire.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}")
                self._peer_frame = value
            elif ident == wire.SETTINGS_ENABLE_PUSH and value > 1:
                raise H2Error(wire.PROTOCOL_ERROR, f"SETTINGS_ENABLE_PUSH {value}")
            # Header table size: our encoder keeps no table; the rest do not concern a server.
        self._ack(frame(wire.SETTINGS, wire.ACK, 0))
        if grown:
            self._unblock()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2Error(wire.FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4")
        increment = int.from_bytes(payload) & wire.MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                raise H2Error(wire.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > wire.MAX_WINDOW:
                raise H2Error(wire.FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            if not self._blocked:  # nothing waits for it
                self._useless_frame("WINDOW_UPDATE")
            self._unblock()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            self._useless_frame("WINDOW_UPDATE of a closed stream")
            return
        window = self._peer_window + stream.send_delta
        if increment == 0 or window + increment > wire.MAX_WINDOW:
            self.reset(stream, wire.PROTOCOL_ERROR if increment == 0 else wire.FLOW_CONTROL_ERROR)
            self.on_reset(stream)
            return
        stream.send_delta += increment
        if stream.id in self._blocked:
            self._drain(stream)
        else:
            self._useless_frame("WINDOW_UPDATE")

    # -- sending -----------------------------------------------------------------------------

    def _send_now(self, stream: Stream, data: bytes | bytearray) -> int:
        """Send what the windows allow of ``data`` as DATA frames; return the bytes sent."""
        allowed = min(len(data), self._send_window, self._peer_window + stream.send_delta)
        if allowed <= 0:
            return 0
        limit, sid = self._peer_frame, stream.id
        if allowed <= limit:
            self._write(
                frame(DATA, 0, sid, bytes(data[:allowed]) if allowed < len(data) else bytes(data))
            )
        else:
            for i in range(0, allowed, limit):
                self._write(frame(DATA, 0, sid, bytes(data[i : min(i + limit, allowed)])))
        # Frames the peer may acknowledge: full ones and the last of what was asked, not the
        # slivers a peer gets by opening its window a byte at a time (they earn nothing).
        self._data_sent += allowed // limit + (allowed == len(data) and allowed % limit > 0)
        self._send_window -= allowed
        stream.send_delta -= allowed
        return allowed

    def _drain(self, stream: Stream) -> None:
        if self._paused:
            return
        sent = self._send_now(stream, stream.pending)
        del stream.pending[:sent]
        self._pending -= sent
        self.drains += sent > 0
        if stream.pending:
            return
        self._blocked.pop(stream.id, None)
        if stream.pending_end is not None:
            block, stream.pending_end = stream.pending_end, None
            self.send_headers(stream, block, end=True)

    def _unblock(self) -> None:
        for stream in list(self._blocked.values()):
            if self._send_window <= 0 or self._paused:
                break
            self._drain(stream)

    def _end_stream(self, stream: Stream) -> None:
        self._served += 1
        stream.local_closed = True
        # The call and its stream point at each other: without this, every call would be a
        # reference cycle, freed (with its request) only when the collector gets to it.
        stream.app = None
        if not stream.remote_closed:
            # The answer is complete before the request: tell the peer to stop sending.
            self._write(frame(wire.RST_STREAM, 0, stream.id, wire.NO_ERROR.to_bytes(4)))
        self._forget(stream)

    def _forget(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)
        if self._blocked.pop(stream.id, None) is not None:
            self._pending -= len(stream.pending)
            stream.pending.clear()
        if self._goaway_sent and not self.streams:
            self._close_after_flush()

    def _write(self, data: bytes) -> None:
        # Frames written in one loop turn leave in one write: the answers to requests that
        # were batched together go out in one syscall.
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        transport = self.transport
        if self._out and transport is not None and not transport.is_closing():
            transport.write(b"".join(self._out))
            if self._acks and not transport.get_write_buffer_size():
                self._acks = 0  # all ACKs reached the socket: the peer reads them
        self._out.clear()

    def _close_after_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def fail(self, code: int, message: str) -> None:
        """End the connection now with GOAWAY carrying ``code`` and ``message``.

        The GOAWAY is followed by a FIN, not a close: closing a socket whose peer is still
        sending makes the kernel answer with a reset, which can destroy the GOAWAY before
        the peer reads it. What the peer sends meanwhile is dropped unread; the connection
        is aborted ``FAIL_LINGER_S`` later if the peer has not closed it by then.
        """
        if self._closed:
            return
        logger.debug("HTTP/2 connection error %#x from %s: %s", code, self.peer, message)
        debug = message.encode()[:256]
        self._out.append(
            frame(wire.GOAWAY, 0, 0, self._last_stream.to_bytes(4) + code.to_bytes(4) + debug)
        )
        self._closed = True
        self._buffer = bytearray()  # what the peer sent is not needed any more
        self._end_streams()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        transport = self.transport
        if transport is not None:
            if transport.can_write_eof():
                transport.write_eof()
                transport.pause_reading()
            else:
                transport.close()
        self._loop.call_later(FAIL_LINGER_S, self.abort)

    def abort(self) -> None:
        """Close now, dropping what is still unsent (a peer that does not read)."""
        if self.transport is not None and not self._lost:
            self.transport.abort()

    def _drop(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    def _check_handshake(self) -> None:
        if not self._settings_seen and not self._closed:
            self._drop()
