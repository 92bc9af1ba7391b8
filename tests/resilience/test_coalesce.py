"""Coalescer: identical calls in flight share one run; errors reach all; cancels stay local."""

import asyncio

import pytest

from inferd.resilience.coalesce import Coalescer


async def test_concurrent_identical_calls_run_once() -> None:
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    flights: Coalescer[int] = Coalescer()
    waiters = [asyncio.ensure_future(flights.run(b"k", work)) for _ in range(16)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert [r for r, _ in results] == [42] * 16
    assert sum(leader for _, leader in results) == 1
    assert len(flights) == 0
    assert (await flights.run(b"k", work))[0] == 42
    assert calls == 2


async def test_a_failure_reaches_every_waiter() -> None:
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        raise RuntimeError("model broke")

    flights: Coalescer[int] = Coalescer()
    waiters = [asyncio.ensure_future(flights.run(b"k", work)) for _ in range(4)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_cancelling_one_waiter_leaves_the_others() -> None:
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        return 7

    flights: Coalescer[int] = Coalescer()
    first = asyncio.ensure_future(flights.run(b"k", work))  # the leader
    second = asyncio.ensure_future(flights.run(b"k", work))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == (7, False)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_different_keys_do_not_share() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 1

    flights: Coalescer[int] = Coalescer()
    results = await asyncio.gather(flights.run(b"a", work), flights.run(b"b", work))
    assert [leader for _, leader in results] == [True, True]
