"""Abuse remembered per peer address: an attacker that reconnects gets no fresh budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from fixtures.h2 import grpc_headers, read_frames
from hpack import Encoder

from inferd.transport.grpc._h2_limits import MAX_STRIKES, Budget, Http2Limits, Penalties
from inferd.transport.grpc._h2_wire import (
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    HEADERS,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    frame,
)
from inferd.transport.grpc.native import GrpcTransportServer

CANCEL = (8).to_bytes(4)


def test_strikes_halve_with_their_half_life() -> None:
    now = [0.0]
    penalties = Penalties(half_life_s=10.0, max_addresses=100, floor=4, clock=lambda: now[0])
    assert penalties.allowance("10.0.0.1") == 1.0
    penalties.strike("10.0.0.1")
    penalties.strike("10.0.0.1")
    assert penalties.allowance("10.0.0.1") == pytest.approx(0.25)
    assert penalties.allowance("10.0.0.2") == 1.0  # one address's abuse is its own
    now[0] = 10.0  # two strikes count one after a half-life
    assert penalties.strikes("10.0.0.1") == pytest.approx(1.0)
    now[0] = 200.0
    assert penalties.allowance("10.0.0.1") == pytest.approx(1.0, abs=1e-5)
    for _ in range(1000):  # a long attack: the strikes are capped, so they wear off
        penalties.strike("10.0.0.3")
    assert penalties.strikes("10.0.0.3") == MAX_STRIKES
    now[0] += 10.0 * 10
    assert penalties.allowance("10.0.0.3") > 0.99


def test_only_the_most_recently_struck_addresses_are_kept() -> None:
    penalties = Penalties(half_life_s=10.0, max_addresses=2, floor=4, clock=lambda: 0.0)
    for address in ("a", "b", "a", "c"):  # "a" struck again: "b" is the oldest
        penalties.strike(address)
    assert penalties.strikes("b") == 0.0
    assert penalties.strikes("a") == pytest.approx(2.0)
    assert penalties.strikes("c") == pytest.approx(1.0)


def test_a_shrunk_budget_keeps_its_floor() -> None:
    budget = Budget(burst=1000, rate=0.0, per_work=1.0, clock=lambda: 0.0)
    budget.shrink(0.001, floor=16)
    assert budget.tokens == 16.0
    budget.shrink(1.0, floor=16)  # never grows
    assert budget.tokens == 16.0


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    """A bare native transport with a unary echo method; 100 resets at once and none back
    with time (a frozen clock)."""

    async def unary(request: bytes, context: Any) -> bytes:
        return request

    server = GrpcTransportServer(
        limits=Http2Limits(reset_burst=100, reset_rate=0.0, penalised_floor=8, clock=lambda: 0.0)
    )
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(unary)}
    server.add_registered_method_handlers("t.Unary", handlers)
    yield await server.start("127.0.0.1", 0)
    await server.stop(0.5)


async def rapid_reset(port: int, streams: int) -> tuple[int | None, int]:
    """One connection that opens and resets ``streams`` calls: (its GOAWAY code, the highest
    stream id the server says it processed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    encoder, out = Encoder(), [PREFACE, frame(SETTINGS, 0, 0, b"")]
    for stream_id in range(1, 2 * streams, 2):
        block = encoder.encode(grpc_headers("/t.Unary/Echo"))
        out += [frame(HEADERS, END_HEADERS, stream_id, block)]
        out += [frame(DATA, END_STREAM, stream_id, b"\x00\x00\x00\x00\x01x")]
        out += [frame(RST_STREAM, 0, stream_id, CANCEL)]
    writer.write(b"".join(out))
    code, last = None, 0
    async for kind, _, _, payload in read_frames(reader, timeout_s=5.0):
        if kind == GOAWAY:
            code, last = int.from_bytes(payload[4:8]), int.from_bytes(payload[:4]) & 0x7FFFFFFF
    writer.close()
    return code, last


async def unary_call(port: int) -> bytes:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/t.Unary/Echo")
        return bytes(await asyncio.wait_for(call(b"hello"), 5.0))


async def test_a_reconnecting_attacker_starts_with_a_shrinking_budget(echo: int) -> None:
    # Open a legitimate channel first: a connection that is already open keeps its budget.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{echo}") as channel:
        call = channel.unary_unary("/t.Unary/Echo")
        assert await asyncio.wait_for(call(b"before"), 5.0) == b"before"
        code, last = await rapid_reset(echo, 300)
        assert code == ENHANCE_YOUR_CALM
        assert last == 2 * 101 - 1  # the whole burst of 100, ended on the 101st
        code, last = await rapid_reset(echo, 300)
        assert code == ENHANCE_YOUR_CALM
        assert last == 2 * 51 - 1  # one strike: half the burst
        for _ in range(6):
            code, last = await rapid_reset(echo, 300)
        assert code == ENHANCE_YOUR_CALM
        assert last == 2 * 9 - 1  # many strikes: the floor of 8
        assert await asyncio.wait_for(call(b"after"), 5.0) == b"after"
    # A new, well-behaved connection from the same address is served: calls that end
    # normally use no reset tokens.
    assert await unary_call(echo) == b"hello"
