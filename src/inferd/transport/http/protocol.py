"""uvicorn's httptools protocol with a deadline on reading each request (slowloris).

uvicorn times out idle keep-alive connections, but nothing else: a client that connects and
sends nothing, or sends its headers or body a byte at a time, holds its connection (and, for a
body, a running request task) for as long as it likes. Enough of them exhaust the process's
file descriptors and memory. :class:`InferdHttpProtocol` starts a timer when a connection
opens and when each request begins; if the request (headers and body) has not been read in
full when it fires, the client gets ``408 Request Timeout`` (when no answer was started) and
the connection is closed. Everything else is uvicorn's own code.
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


class InferdHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a request must arrive in full within the read timeout."""

    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        seconds = read_timeout_s()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out, seconds)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self, seconds: float) -> None:
        self._read_timer = None
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
