"""Leases: one holder at a time, renewal, expiry on the caller's clock, release; on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from inferd.registry import Registry
from inferd.registry.leases import Lease


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    reg = Registry(registry_url)
    yield reg
    reg.close()


def test_one_holder_until_its_lease_runs_out(registry: Registry) -> None:
    clock = Clock()
    a = Lease(registry, "x", 10.0, owner="a", clock=clock)
    b = Lease(registry, "x", 10.0, owner="b", clock=clock)
    assert a.acquire()
    assert not b.acquire()
    clock.now += 9.0
    assert a.acquire()  # renewed: good until 1019
    clock.now += 9.0
    assert not b.acquire()
    assert a.holder() == ("a", 1019.0)
    clock.now += 2.0  # a stopped renewing
    assert b.acquire()
    assert not a.acquire()
    assert Lease(registry, "other", 10.0, owner="a", clock=clock).acquire()  # names apart


def test_release_hands_over_at_once(registry: Registry) -> None:
    clock = Clock()
    a = Lease(registry, "x", 10.0, owner="a", clock=clock)
    b = Lease(registry, "x", 10.0, owner="b", clock=clock)
    assert a.acquire()
    b.release()  # not the holder: changes nothing
    assert not b.acquire()
    a.release()
    assert b.acquire()


def test_racing_processes_take_it_once(registry: Registry) -> None:
    clock = Clock()
    leases = [Lease(registry, "race", 10.0, owner=f"o{i}", clock=clock) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda lease: lease.acquire(), leases))
    assert won.count(True) == 1


def test_ttl_must_be_positive(registry: Registry) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        Lease(registry, "x", 0.0)
