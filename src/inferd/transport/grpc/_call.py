"""One gRPC call on inferd's transport: message framing, the handler run, the status.

:class:`ServicerContext` is what a handler gets as ``context`` (the ``grpc.aio`` methods
handlers use) and also the call's own state: the messages read from the stream, the
handler task, the deadline timer, the headers and trailers written back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from inferd.transport.grpc._compression import (
    ACCEPTED,
    Inflater,
    InflaterBusy,
    MessageTooLarge,
)
from inferd.transport.grpc._h2_wire import STATUS_200, Stream, hpack_literal
from inferd.transport.grpc.http2 import Http2Connection

logger = logging.getLogger(__name__)

GRPC_HEAD = STATUS_200 + hpack_literal(b"content-type", b"application/grpc")
_OK = hpack_literal(b"grpc-status", b"0")
_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
ACCEPT_ENCODING = hpack_literal(b"grpc-accept-encoding", ACCEPTED)
Handler = Any  # grpc.RpcMethodHandler: typeshed has no usable generic for it


class _Abort(Exception):
    """Raised by :meth:`ServicerContext.abort`: end the call with this status."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Sequence[Any]) -> None:
        super().__init__(details)
        self.code, self.details, self.trailers = code, details, trailers


class CallDetails:
    """What an interceptor or generic handler sees of a call (grpc.HandlerCallDetails)."""

    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


def parse_timeout(value: bytes) -> float | None:
    """``grpc-timeout`` (1 to 8 digits and a unit) in seconds; None when malformed."""
    unit = _UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def _percent(text: str) -> bytes:
    """``grpc-message`` encoding: UTF-8, then %XX for bytes outside printable ASCII and '%'."""
    out = bytearray()
    for byte in text.encode():
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def status_block(code: grpc.StatusCode, details: str, trailers: Sequence[Any]) -> bytes:
    block = hpack_literal(b"grpc-status", str(code.value[0]).encode())
    if details:
        block += hpack_literal(b"grpc-message", _percent(details))
    return block + _metadata_block(trailers)


def _metadata_block(metadata: Sequence[Any] | None) -> bytes:
    out = b""
    for key, value in metadata or ():
        name = key.lower().encode("latin-1")
        if name.endswith(b"-bin"):
            data = value if isinstance(value, bytes) else value.encode()
            out += hpack_literal(name, base64.b64encode(data).rstrip(b"="))
        else:
            out += hpack_literal(name, str(value).encode("latin-1"))
    return out


def metadata_value(name: str, value: bytes) -> str | bytes:
    """A metadata value as handlers see it: ``-bin`` ones base64-decoded to bytes.

    Raises:
        ValueError: a ``-bin`` value is not base64.
    """
    if name.endswith("-bin"):
        try:
            return base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
        except binascii.Error as err:
            raise ValueError(f"metadata {name!r} is not base64 ({err})") from err
    return value.decode("latin-1")


class _Compressed:
    """A request message that arrived compressed: inflated by the call's task, not on
    arrival (so after the interceptors, and large ones off the event loop)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class CallPolicy:
    """What every call of one server shares: its limits, its interceptors, the count of
    request bytes still arriving (over all connections), which each call adds to and gives
    back, and the inflater of compressed messages.

    Args:
        interceptors: ``grpc.aio.ServerInterceptor`` instances, run per call in order.
        max_message_bytes: largest request and response message.
        max_buffered_bytes: request bytes of messages still arriving held at most.
    """

    __slots__ = (
        "buffered", "inflater", "interceptors", "max_buffered_bytes", "max_message_bytes",
    )  # fmt: skip

    def __init__(
        self, interceptors: Sequence[Any], max_message_bytes: int, max_buffered_bytes: int
    ) -> None:
        self.interceptors = list(interceptors)
        self.max_message_bytes = max_message_bytes
        self.max_buffered_bytes = max(max_buffered_bytes, max_message_bytes)
        self.buffered = 0
        self.inflater = Inflater()


class ServicerContext:
    """One call: what a handler gets as ``context``, and the call's own bookkeeping."""

    def __init__(
        self, conn: Http2Connection, policy: CallPolicy, stream: Stream, method: str,
        handler: Handler, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None,
        wbits: int | None,
    ) -> None:  # fmt: skip
        self._conn, self._stream, self._method, self._handler = conn, stream, method, handler
        self._policy = policy
        self._metadata, self._deadline, self._wbits = metadata, deadline, wbits
        self._buffer = bytearray()
        self._message: bytes | _Compressed | None = None
        self._count = 0
        self._queue: asyncio.Queue[bytes | _Compressed | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._headers_sent = False
        self._done = False
        self._expired = False
        self._cancelled = False
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailers: Sequence[Any] = ()
        self._opened = time.monotonic()

    # -- the grpc.aio ServicerContext methods handlers use -----------------------------------

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> None:
        """End the call with ``code``; never returns."""
        raise _Abort(code, details, trailing_metadata)

    def peer(self) -> str:
        """``ipv4:host:port`` or ``ipv6:[host]:port``, as grpc writes it."""
        address = self._conn.peer
        if not address:
            return "unknown"
        host, port = address[0], address[1]
        return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"

    def time_remaining(self) -> float | None:
        """Seconds left before the caller's deadline; None without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The caller's metadata (``-bin`` values as bytes)."""
        return self._metadata

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Sequence[Any]) -> None:
        self._trailers = trailing_metadata

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._done

    async def send_initial_metadata(self, initial_metadata: Sequence[Any]) -> None:
        if not self._headers_sent:
            self._headers_sent = True
            block = GRPC_HEAD + _metadata_block(initial_metadata)
            self._conn.send_headers(self._stream, block)

    async def write(self, message: Any) -> None:
        """Send one response message (server-streaming handlers)."""
        self._send(message)

    async def read(self) -> Any:
        """The next request message of a client stream; ``grpc.aio.EOF`` at its end."""
        assert self._queue is not None
        data = await self._queue.get()
        return grpc.aio.EOF if data is None else self._parse(await self._inflated(data))

    # -- the call ----------------------------------------------------------------------------

    def received(self, data: bytes, end: bool) -> None:
        """Body bytes from the connection: split them into length-prefixed messages."""
        if self._done:
            return
        buffer, server = self._buffer, self._policy
        if buffer or len(data) < 5 or len(data) != 5 + int.from_bytes(data[1:5]):
            buffer += data
            server.buffered += len(data)
            while len(buffer) >= 5:
                size = int.from_bytes(buffer[1:5])
                if size > server.max_message_bytes:
                    return self._refuse_size(size)
                if len(buffer) < 5 + size:
                    if server.buffered > server.max_buffered_bytes:
                        return self._refuse_buffered()
                    break
                self._deliver(buffer[0], bytes(buffer[5 : 5 + size]))
                del buffer[: 5 + size]
                server.buffered -= 5 + size
                if self._done:
                    return
        elif len(data) - 5 > self._policy.max_message_bytes:
            return self._refuse_size(len(data) - 5)
        else:
            self._deliver(data[0], data[5:])  # the usual case: one whole message, no copy
            if self._done:
                return
        if end:
            if self._queue is not None:
                self._queue.put_nowait(None)
            elif self._task is None and not self._done:
                self.start()

    def _deliver(self, compressed: int, data: bytes) -> None:
        message: bytes | _Compressed = data
        if compressed:
            if self._wbits is None:
                return self._finish(
                    grpc.StatusCode.INTERNAL, "compressed message without grpc-encoding", ()
                )
            message = _Compressed(data)
        self._count += 1
        if self._queue is not None:
            self._queue.put_nowait(message)
        else:
            self._message = message

    async def _inflated(self, message: bytes | _Compressed) -> bytes:
        """The message, inflated if it came compressed (bounded, large ones off the loop)."""
        if not isinstance(message, _Compressed):
            return message
        if self._wbits is None:  # _deliver refuses compressed messages without an encoding
            raise _Abort(grpc.StatusCode.INTERNAL, "compressed message without grpc-encoding", ())
        limit = self._policy.max_message_bytes
        try:
            return await self._policy.inflater.inflate(message.data, self._wbits, limit)
        except zlib.error as err:
            problem = f"cannot decompress the message ({err})"
            raise _Abort(grpc.StatusCode.INTERNAL, problem, ()) from err
        except (MessageTooLarge, InflaterBusy) as err:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err), ()) from err

    def _refuse_buffered(self) -> None:
        server = self._policy
        self._finish(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the server holds {server.buffered} bytes of gRPC requests still arriving, more "
            f"than INFERD_GRPC_MAX_BUFFERED_BYTES ({server.max_buffered_bytes}); retry later", (),
        )  # fmt: skip

    def _release(self) -> None:
        """Give back the bytes of a message that will never be completed."""
        if self._buffer:
            self._policy.buffered -= len(self._buffer)
            self._buffer.clear()

    def _refuse_size(self, size: int) -> None:
        limit = self._policy.max_message_bytes
        self._finish(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"received message larger than max ({size} vs. {limit})", (),
        )  # fmt: skip

    def start(self) -> None:
        """Run the handler (unary requests: once the message is in; streams: at once)."""
        if self._handler.request_streaming:
            self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self._deadline is not None:
            delay = self._deadline - time.monotonic()
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def waiting_since(self, moment: float) -> bool:
        """Whether this unary call opened before ``moment`` and still waits for its request."""
        return self._task is None and not self._done and self._opened < moment

    def refuse_slow(self, seconds: float) -> None:
        """End a call whose request did not arrive whole in time."""
        problem = f"request not received within {seconds:g} s (INFERD_REQUEST_READ_TIMEOUT_S)"
        self._finish(grpc.StatusCode.DEADLINE_EXCEEDED, problem, ())

    def _expire(self) -> None:
        if self._task is not None and not self._done:
            self._expired = True
            self._task.cancel()

    def cancel(self) -> None:
        """The stream is gone (reset by the client, connection lost, shutdown)."""
        self._cancelled = True
        self._done = True
        self._release()
        if self._task is not None:
            self._task.cancel()
        if self._timer is not None:
            self._timer.cancel()

    async def _run(self) -> None:
        handler = self._handler
        try:
            if self._policy.interceptors:
                handler = await self._intercept(handler)
            if handler.request_streaming:
                request: Any = self._requests()
            elif self._count != 1:
                raise _Abort(
                    grpc.StatusCode.INTERNAL, f"expected one request message, got {self._count}", ()
                )
            else:
                message, self._message = self._message or b"", None
                if isinstance(message, _Compressed):
                    message = await self._inflated(message)
                request = self._parse(message)
            if handler.unary_unary is not None:
                self._send(await handler.unary_unary(request, self))
            else:
                call = handler.unary_stream or handler.stream_stream or handler.stream_unary
                result = call(request, self)
                if hasattr(result, "__anext__"):
                    async for message in result:
                        self._send(message)
                else:
                    response = await result
                    if handler.stream_unary is not None:
                        self._send(response)
            self._finish(self._code or grpc.StatusCode.OK, self._details, self._trailers)
        except _Abort as abort:
            self._finish(abort.code, abort.details, abort.trailers)
        except asyncio.CancelledError:
            if self._expired:
                self._finish(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", ())
            # Otherwise the client went away: there is no one to answer.
        except Exception:
            logger.exception("unexpected error in %s", self._method)
            self._finish(grpc.StatusCode.UNKNOWN, "internal server error", ())
        finally:
            if self._timer is not None:
                self._timer.cancel()

    async def _intercept(self, handler: Handler) -> Handler:
        interceptors = self._policy.interceptors
        details = CallDetails(self._method, self._metadata)

        async def chain(index: int, call_details: Any) -> Handler:
            if index == len(interceptors):
                return handler
            return await interceptors[index].intercept_service(
                lambda d: chain(index + 1, d), call_details
            )

        found = await chain(0, details)
        if found is None:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {self._method}", ())
        return found

    def _parse(self, data: bytes) -> Any:
        parse = self._handler.request_deserializer
        if parse is None:
            return data
        try:
            return parse(data)
        except DecodeError as err:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request message does not parse ({err})", ()
            ) from err

    async def _requests(self) -> AsyncIterator[Any]:
        assert self._queue is not None
        while (data := await self._queue.get()) is not None:
            yield self._parse(await self._inflated(data))
        if self._done:
            raise asyncio.CancelledError

    def _send(self, message: Any) -> None:
        if self._done:
            return
        serialize = self._handler.response_serializer
        data = serialize(message) if serialize is not None else message
        limit = self._policy.max_message_bytes
        if len(data) > limit:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"response larger than max ({len(data)} vs. {limit})", (),
            )  # fmt: skip
        conn, stream = self._conn, self._stream
        if not self._headers_sent:
            self._headers_sent = True
            conn.send_headers(stream, GRPC_HEAD)
        conn.send_data(stream, b"\x00" + len(data).to_bytes(4) + data)

    def _finish(self, code: grpc.StatusCode, details: str, trailers: Sequence[Any]) -> None:
        if self._done:
            return
        self._done = True
        self._release()
        if self._queue is not None:
            self._queue.put_nowait(None)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        if code is grpc.StatusCode.OK and not details and not trailers:
            block = _OK
        else:
            block = status_block(code, details, trailers)
        if not self._headers_sent:  # trailers-only
            self._headers_sent = True
            block = GRPC_HEAD + block
        self._conn.send_headers(self._stream, block, end=True)
