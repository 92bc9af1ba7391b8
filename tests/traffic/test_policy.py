"""The traffic policy: memory-only routing, refresh on revision, flushes on an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine

from inferd.errors import RegistryUnavailable
from inferd.registry import Registry
from inferd.traffic import policy as policy_module
from inferd.traffic.policy import FALLBACK, TrafficPolicy
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentStore
from inferd.types import InferenceRequest, InferenceResponse

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExperimentStore]:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    yield ExperimentStore(registry)
    registry.close()


def run(store: ExperimentStore, **changes: Any) -> str:
    body: dict[str, Any] = {
        "name": "e", "model": "m", "max_duration_s": 600,
        "variants": [{"name": "a", "version": 1, "weight": 0.5},
                     {"name": "b", "version": 2, "weight": 0.5}],
    }  # fmt: skip
    body.update(changes)
    record = store.create(parse_spec(body), "t", NOW)
    store.transition(record.id, ["draft"], "running", "t", NOW, started_at=NOW)
    return record.id


def request(unit: str | None = None, version: str | None = None, **params: Any) -> InferenceRequest:
    x = {"x": np.zeros(1, dtype=np.float32)}
    return InferenceRequest("m", version, x, id="r", parameters=params, routing_key=unit)


async def test_routing_follows_the_revision_and_reads_no_database(store: ExperimentStore) -> None:
    policy = TrafficPolicy(store, clock=Clock())
    await policy.tick()
    assert policy.live == {}
    exp_id = run(store)
    await policy.tick()  # the revision moved: refreshed
    store.registry.engine = create_engine("sqlite:////nonexistent/x.db")  # any read fails
    route = policy.route(request("alice"))
    assert route is not None
    assert (route.experiment, route.version) == (exp_id, {"a": "1", "b": "2"}[route.variant])
    assert policy.route(request("alice", version="1")) is None  # a named version bypasses
    assert policy.route(InferenceRequest("other", None, {})) is None


async def test_tallies_flush_on_the_clock_and_sum_across_processes(
    store: ExperimentStore,
) -> None:
    clock = Clock()
    exp_id = run(store, exposure_sample_rate=1.0)
    one = TrafficPolicy(store, clock=clock, flush_s=5, source="p1")
    two = TrafficPolicy(store, clock=clock, flush_s=5, source="p2")
    for policy in (one, two):
        await policy.tick()
    for i in range(300):
        policy = one if i % 3 else two
        req = request(f"u{i}")
        route = policy.route(req)
        assert route is not None
        policy.record(route, req, 500 if i % 10 == 0 else 200, 2.0)
    await one.tick()
    assert store.aggregates(exp_id) == {}  # not yet: 5 s have not passed
    clock.now += 5
    await one.tick()
    await two.tick()
    rows = store.aggregates(exp_id)
    assert sum(d["count"] for parts in rows.values() for d in parts) == 300
    assert sum(d["conversions"] for parts in rows.values() for d in parts) == 30  # errors
    assert sum(len(parts) for parts in rows.values()) == 4  # two variants x two processes
    assert len(store.exposure_variants(exp_id, ["r"])) == 1


async def test_fallback_requests_are_served_but_tallied_apart(store: ExperimentStore) -> None:
    run(store, fallback="b")
    policy = TrafficPolicy(store, clock=Clock())
    policy.refresh()
    route = policy.route(request(None))
    assert route is not None
    assert (route.variant, route.logged) == ("b", False)
    assert route.tally is policy.live["m"].tallies[FALLBACK]


async def test_session_and_per_request_units(store: ExperimentStore) -> None:
    run(store, unit={"kind": "session"}, exposure_sample_rate=1.0)  # logged: with its unit
    policy = TrafficPolicy(store, clock=Clock())
    policy.refresh()
    first = policy.route(request("ignored", session_id="s-1"))
    assert first is not None
    assert (first.unit, first.logged) == ("s-1", True)
    again = [policy.route(request(None, session_id="s-1")) for _ in range(20)]
    assert {r.variant for r in again if r is not None} == {first.variant}
    assert policy.route(request(None)) is not None  # no session: the control


async def test_the_exposure_buffer_is_bounded(
    store: ExperimentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy_module, "MAX_PENDING_EXPOSURES", 10)
    run(store, exposure_sample_rate=1.0)
    policy = TrafficPolicy(store, clock=Clock())
    policy.refresh()
    for i in range(25):
        req = request(f"u{i}")
        route = policy.route(req)
        assert route is not None
        policy.record(route, req, 200, 1.0)
    assert policy.dropped_exposures == 15
    assert sum(t.count for t in policy.live["m"].tallies.values()) == 25  # tallies never drop


async def test_an_experiment_past_its_duration_stops_and_routing_ends(
    store: ExperimentStore,
) -> None:
    clock = Clock()
    exp_id = run(store)
    policy = TrafficPolicy(store, clock=clock, flush_s=5)
    await policy.tick()
    clock.now += 601
    await policy.tick()
    assert store.get(exp_id).state == "stopped"
    assert policy.live == {}


async def test_a_tenth_of_routed_requests_is_logged_by_default(store: ExperimentStore) -> None:
    run(store)
    policy = TrafficPolicy(store, clock=Clock())
    policy.refresh()
    routes = [policy.route(request(f"u{i}")) for i in range(2_000)]
    logged = sum(r.logged for r in routes if r is not None)
    assert 120 < logged < 280  # 10% of 2,000, sd about 13


async def test_close_writes_what_the_last_interval_counted(store: ExperimentStore) -> None:
    exp_id = run(store)
    policy = TrafficPolicy(store, clock=Clock(), flush_s=5)
    await policy.tick()
    req = request("u1")
    route = policy.route(req)
    assert route is not None
    policy.record(route, req, 200, 1.0)
    await policy.close()  # before 5 s passed: shutdown must not lose the tallies
    assert sum(d["count"] for parts in store.aggregates(exp_id).values() for d in parts) == 1


async def test_a_failed_flush_is_written_next_time(
    store: ExperimentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    exp_id = run(store, exposure_sample_rate=1.0)
    policy = TrafficPolicy(store, clock=clock, flush_s=5)
    await policy.tick()
    req = request("u1")
    route = policy.route(req)
    assert route is not None
    policy.record(route, req, 200, 1.0)

    def down(*_: object) -> None:
        raise RegistryUnavailable("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(store, "save_aggregates", down)
        clock.now += 5
        with pytest.raises(RegistryUnavailable):
            await policy.tick()
    assert store.aggregates(exp_id) == {}
    await policy.close()  # nothing new was counted; what failed is written now
    assert sum(d["count"] for parts in store.aggregates(exp_id).values() for d in parts) == 1
    assert store.exposure_variants(exp_id, ["r"]) == {"r": route.variant}


async def test_answers_wait_in_a_list_until_a_tick_folds_them_even_with_the_registry_down(
    store: ExperimentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp_id = run(store)
    clock = Clock()
    policy = TrafficPolicy(store, clock=clock)
    policy.refresh()
    tallies = policy.live["m"].tallies  # type: ignore[union-attr]
    for i in range(10):
        req = request(f"u{i}")
        route = policy.route(req)
        assert route is not None
        policy.answered(route, req, InferenceResponse("m", route.version, {}, latency_ms=2.0))
        assert route.tally.count == 0  # an append: the arithmetic waits for the fold
    assert sum(len(a) for a in policy._answers[exp_id].values()) == 10

    def down(*_: object) -> None:
        raise RegistryUnavailable("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(store.registry, "revision", down)
        with pytest.raises(RegistryUnavailable):
            await policy.tick()  # a tick between flushes, the registry down: it still folds
    assert sum(t.count for t in tallies.values()) == 10
    assert sum(t.total for t in tallies.values()) == pytest.approx(20.0)
    assert sum(len(a) for a in policy._answers[exp_id].values()) == 0
    req = request("u0")
    route = policy.route(req)
    assert route is not None
    policy.answered(route, req, InferenceResponse("m", route.version, {}, latency_ms=2.0))
    await policy.close()  # the flush folds what came after the tick
    written = store.aggregates(exp_id)
    assert sum(d["count"] for parts in written.values() for d in parts) == 11
