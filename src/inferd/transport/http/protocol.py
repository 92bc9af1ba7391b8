"""uvicorn's httptools protocol with a deadline on reading each request (slowloris).

uvicorn times out idle keep-alive connections, but nothing else: a client that connects and
sends nothing, or sends its headers or body a byte at a time, holds its connection (and, for a
body, a running request task) for as long as it likes. Enough of them exhaust the process's
file descriptors and memory. :class:`InferdHttpProtocol` starts a timer when a connection
opens and when each request begins; if the request (headers and body) has not been read in
full when it fires, the client gets ``408 Request Timeout`` (when no answer was started) and
the connection is closed. Everything else is uvicorn's own code.

The timer is one per connection, not one per request: a request only writes down its
deadline, and the timer, when it fires, either finds no request being read (and stops), a
later deadline (and waits for that one), or a request past its deadline. Creating and
cancelling a timer for each request cost about 2% of the server's CPU on small requests
(docs/performance.md).

uvicorn writes a response's status line and headers, then its body, with two
``transport.write`` calls: two ``send()`` system calls and two TCP segments for a response
of a few hundred bytes. :class:`_OneWrite` holds the head of each response back and sends it
with the first body chunk (or when the response ends without one).
"""

from __future__ import annotations

import asyncio
import os
from functools import cache
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_READ_TIMEOUT_S = 30.0
_ENV = "INFERD_REQUEST_READ_TIMEOUT_S"  # set by `inferd serve` for every worker
_SLACK_S = 0.01


@cache  # settings do not change while a process runs; the timer is armed per request
def read_timeout_s() -> float:
    """Seconds a client has to send one whole request (``--request-read-timeout-s``)."""
    try:
        value = float(os.environ.get(_ENV, DEFAULT_READ_TIMEOUT_S))
    except ValueError:
        return DEFAULT_READ_TIMEOUT_S
    return value if value > 0 else DEFAULT_READ_TIMEOUT_S


def _timeout_response(seconds: float) -> bytes:
    body = orjson.dumps({"error": f"request not received within {seconds:g} s "
                                  "(INFERD_REQUEST_READ_TIMEOUT_S)"})  # fmt: skip
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    return head + body


class _OneWrite:
    """The transport a response cycle writes to: its first write (the head) is held and
    sent with the next one, so that a small response leaves in one ``send()``."""

    __slots__ = ("_held", "hold_next", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.hold_next = False
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.hold_next:
            self.hold_next = False
            self._held = data
            return
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self.transport.write(data)

    def flush(self) -> None:
        self.hold_next = False
        held, self._held = self._held, None
        if held is not None:
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())


class InferdHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a request must arrive in full within the read timeout,
    and a response leaves in one write."""

    _read_timer: asyncio.TimerHandle | None = None
    _deadline: float | None = None  # loop time by which the request being read must be in
    _writer: _OneWrite | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._writer = _OneWrite(transport)
        self._expect_request()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Called when a request's cycle starts (at once, or after the pipelined ones before
        # it answered): only then is the next write on the connection this cycle's head.
        writer = self._writer
        if writer is not None:
            writer.flush()
            writer.hold_next = True
            cycle.transport = writer
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        if self._writer is not None:
            self._writer.flush()  # a head without a body write (HEAD, an empty 304)
        super().on_response_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._expect_request()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline = None  # the timer stops by itself when it next fires

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def _expect_request(self) -> None:
        self._deadline = deadline = self.loop.time() + read_timeout_s()
        if self._read_timer is None:
            self._read_timer = self.loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._read_timer = None
        deadline = self._deadline
        if deadline is None:
            return  # nothing being read; the next request arms the timer again
        # A later request started since the timer was set. (The slack: uvloop's clock and
        # timers have millisecond resolution, so a timer may fire a hair before its time.)
        if self.loop.time() + _SLACK_S < deadline:
            self._read_timer = self.loop.call_at(deadline, self._check_deadline)
            return
        self._deadline = None
        self._read_timed_out(read_timeout_s())

    def _read_timed_out(self, seconds: float) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            transport.write(_timeout_response(seconds))
        if cycle is not None:
            # The app waits for the rest of the body: it now reads a disconnect, and
            # anything it might still send is dropped, as for a client that went away.
            cycle.disconnected = True
            cycle.message_event.set()
        transport.close()
