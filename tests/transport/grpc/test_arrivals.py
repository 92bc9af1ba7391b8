"""New connections at a rate: a churn of short-lived connections waits, connected clients
don't."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import uvloop
from fixtures.h2 import H2Client, goaway_code, grpc_headers

from inferd.transport.grpc._arrivals import ArrivalGate
from inferd.transport.grpc._h2_wire import ENHANCE_YOUR_CALM
from inferd.transport.grpc.native import GrpcTransportServer


class _Conn:
    def __init__(self, name: str, let: list[str]) -> None:
        self.name, self._let, self.gone = name, let, False

    def let_in(self) -> None:
        self._let.append(self.name)


class _Timers:
    """A driven clock and the callbacks scheduled on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[tuple[float, Callable[[], None]]] = []

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self.due.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.due and min(d for d, _ in self.due) <= end:
            self.due.sort(key=lambda x: x[0])
            when, callback = self.due.pop(0)
            self.now = when
            callback()
        self.now = end


def test_a_burst_goes_in_at_once_and_the_rest_at_the_rate_oldest_first() -> None:
    timers, let = _Timers(), list[str]()
    gate = ArrivalGate(10.0, 3, 1.0, lambda: timers.now, timers.schedule)
    verdicts = [gate.arrive(_Conn(str(i), let)) for i in range(6)]
    assert verdicts == [True, True, True, None, None, None]
    assert gate.waiting == 3
    assert gate.waited == 3
    timers.advance(0.1)
    assert let == ["3"]
    timers.advance(0.2)
    assert let == ["3", "4", "5"]
    assert gate.waiting == 0
    assert timers.due == []


def test_the_wait_is_bounded_and_connections_that_left_give_back_their_turn() -> None:
    timers, let = _Timers(), list[str]()
    gate = ArrivalGate(4.0, 1, 0.5, lambda: timers.now, timers.schedule)  # 2 may wait
    assert gate.arrive(_Conn("a", let)) is True
    left = _Conn("b", let)
    assert gate.arrive(left) is None
    assert gate.arrive(_Conn("c", let)) is None
    assert gate.arrive(_Conn("d", let)) is False  # would wait past 0.5 s
    assert gate.refused == 1
    left.gone = True
    timers.advance(0.25)  # one token: "b" left, so "c" takes it
    assert let == ["c"]


def test_rate_zero_lets_everyone_in() -> None:
    gate = ArrivalGate(0.0, 1, 1.0, time.monotonic, lambda d, c: None)
    assert all(gate.arrive(_Conn(str(i), [])) is True for i in range(10_000))


async def _waits_served_or_refused() -> None:
    """A native transport taking 8 new connections at once (its burst) and 4 more per
    second: of 14 clients, 8 go in at once, the next 4 wait (at most 1 s at 4/s) and are
    served, the last 2 get GOAWAY."""

    async def unary(request: bytes, context: Any) -> bytes:
        return request

    server = GrpcTransportServer(max_new_connections_per_s=4.0, new_connection_burst=8)
    server.add_registered_method_handlers(
        "t.Unary", {"Echo": grpc.unary_unary_rpc_method_handler(unary)}
    )
    port = await server.start("127.0.0.1", 0)
    clients = [await H2Client.connect(port) for _ in range(14)]
    try:
        started = time.monotonic()
        echo = grpc_headers("/t.Unary/Echo")
        answers = await asyncio.gather(
            *(asyncio.wait_for(c.call(b"\x00\x00\x00\x00\x01x", echo), 5) for c in clients[:12])
        )
        assert all(a.trailers.get(b"grpc-status") == b"0" for a in answers)
        assert time.monotonic() - started >= 0.5  # the last to wait came in about 1 s later
        for refused in clients[12:]:
            assert await goaway_code(refused.reader, 5) == ENHANCE_YOUR_CALM
        assert (server.arrivals.waited, server.arrivals.refused) == (4, 2)
    finally:
        for client in clients:
            client.writer.transport.abort()
        await server.stop(0)


async def test_connections_over_the_rate_wait_and_are_served_or_refused() -> None:
    await _waits_served_or_refused()


def test_the_gate_holds_on_uvloop_which_reads_before_a_pause_in_connection_made() -> None:
    # `inferd serve` runs on uvloop: it starts reading once connection_made returns, so the
    # gate must also hold a connection whose first bytes arrive anyway.
    uvloop.run(_waits_served_or_refused())
