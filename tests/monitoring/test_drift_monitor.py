"""The drift monitor over a real registry: sampling, flushes of two workers, claims, events."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from inferd.events import DriftEvent
from inferd.monitoring.drift import DriftMonitor
from inferd.monitoring.drift_check import DriftSettings
from inferd.monitoring.drift_profile import Profile
from inferd.monitoring.drift_sampler import DriftSampler
from inferd.monitoring.drift_store import DriftStore
from inferd.registry import Registry


class Clock:
    def __init__(self) -> None:
        self.now = time.time()  # profiles stored without a time are made now

    def __call__(self) -> float:
        return self.now


def _requests(monitor: DriftMonitor, rng: np.random.Generator, n: int, shift: float) -> None:
    for _ in range(n):
        x = rng.normal(size=(1, 4))
        x[:, 1] += shift
        if monitor.sampler.wants("m"):
            monitor.sampler.take("m", "1", {"x": x}, {"y": x.sum(axis=1)})


def test_two_workers_feed_one_window_and_one_of_them_checks(tmp_path: Any) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    store, clock = DriftStore(registry), Clock()
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(5_000, 4))
    profile = Profile.of({f"x[{i}]": reference[:, i] for i in range(4)},
                         {"y": reference.sum(axis=1)})  # fmt: skip
    store.put_profile("m", 1, profile, "dataset")
    settings = DriftSettings(sample_rate=0.25, min_samples=200, mmd_permutations=49, window_s=60)
    store.put_settings("m", settings)
    metrics = CollectorRegistry()
    workers = [DriftMonitor(store, metrics if i == 0 else None, clock=clock, seed=i)
               for i in range(2)]  # fmt: skip
    events: list[DriftEvent] = []
    for worker in workers:
        worker.events.subscribe(events.append)
        worker.refresh()
    assert workers[0].sampler.rates == {"m": 0.25}
    assert workers[0].sampler.capacities == {"m": 1_000}  # 2 x 10,000 rows per 60 s at 5 s
    for worker in workers:
        _requests(worker, rng, 2_000, shift=1.0)
    clock.now += 10
    for worker in workers:  # both flush before either checks
        asyncio.run(worker.flush())
    for worker in workers:
        asyncio.run(worker.tick())
    checked = [e for e in events if e.kind == "checked"]
    assert len(checked) == 1  # the second worker found the check claimed
    result = checked[0].result
    sampled = workers[0].sampler.sampled + workers[1].sampler.sampled
    assert result["window"]["seen"] == sampled
    assert result["samples"] == sampled  # every sampled row fits below max_samples
    assert result["status"] == "drift"
    assert [e.kind for e in events] == ["checked", "drift"]
    assert {f["name"] for f in result["features"] if f["drifted"]} >= {"x[1]", "y"}
    text = generate_latest(metrics).decode()
    assert 'inferd_drift_detected{model="m",version="1"} 1.0' in text
    assert 'inferd_drift_feature_drifted{feature="output.y",model="m",version="1"} 1.0' in text
    registry.close()


def test_a_reference_is_built_from_the_first_sampled_requests(tmp_path: Any) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    store, clock = DriftStore(registry), Clock()
    store.put_settings("m", DriftSettings(sample_rate=1.0, reference_requests=300,
                                          min_samples=100, window_s=60))  # fmt: skip
    monitor = DriftMonitor(store, clock=clock, seed=1)
    monitor.refresh()
    rng = np.random.default_rng(1)
    _requests(monitor, rng, 200, shift=0.0)
    (first,) = asyncio.run(monitor.check_now("m"))
    assert first["status"] == "collecting"
    _requests(monitor, rng, 200, shift=0.0)
    (second,) = asyncio.run(monitor.check_now("m"))
    assert second["reference"]["source"] == "traffic"
    assert second["reference"]["rows"] == 300
    assert second["status"] == "insufficient_data"  # the window starts after the reference
    clock.now += 5
    _requests(monitor, rng, 300, shift=0.0)
    (third,) = asyncio.run(monitor.check_now("m", 1))
    assert third["status"] in ("ok", "drift")
    assert third["samples"] == 300
    registry.close()


def test_the_sampler_samples_at_its_rate_and_bounds_its_buffer() -> None:
    sampler = DriftSampler(None, capacity=50, seed=3)
    assert not sampler.wants("m")  # not watched
    sampler.rates = {"m": 0.25}
    hits = sum(sampler.wants("m") for _ in range(20_000))
    assert hits == pytest.approx(5_000, rel=0.05)
    for i in range(400):
        sampler.take("m", "2", {"x": np.full((20, 3), float(i)), "k": np.array(["a"] * 20)},
                     {"y": np.zeros(20)})  # fmt: skip
    batches = sampler.batches(sampler.collect())
    seen, data = batches[("m", 2)]
    assert seen == 400 * 16  # ROWS_PER_REQUEST rows of each request
    assert sorted(data) == ["k", "output.y", "x[0]", "x[1]", "x[2]"]
    assert len(data["x[0]"]) == 50
    assert 100 < np.mean(data["x[0]"]) < 300  # a uniform sample, not the first 50 rows
    assert sampler.collect() == {}
    sampler.take("m", "latest", {"x": np.zeros(1)}, {})  # not a registry version: skipped
    assert sampler.collect() == {}


def test_claims_let_one_process_check_per_interval(registry_url: str) -> None:
    registry = Registry(registry_url)
    store = DriftStore(registry)
    assert store.claim("m", 1, 100.0, 60.0, 120.0)
    assert not store.claim("m", 1, 101.0, 60.0, 120.0)  # held
    store.save_result("m", 1, {"status": "ok"}, 102.0)
    assert not store.claim("m", 1, 150.0, 60.0, 120.0)  # checked 48 s ago
    assert store.claim("m", 1, 170.0, 60.0, 120.0)
    assert not store.claim("m", 1, 200.0, 60.0, 120.0)
    assert store.claim("m", 1, 300.0, 60.0, 120.0)  # the last claim expired unfinished
    assert store.results("m") == {("m", 1): {"status": "ok"}}
    registry.close()


def test_the_table_is_bounded_by_the_settings_not_the_traffic(tmp_path: Any) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    store, clock = DriftStore(registry), Clock()
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(1_000, 4))
    store.put_profile("m", 1, Profile.of({f"x[{i}]": reference[:, i] for i in range(4)}),
                      "dataset")  # fmt: skip
    monitor = DriftMonitor(store, clock=clock, seed=2)
    monitor.refresh()
    # Defaults: a window of an hour tested on 10,000 rows -> 28 rows per 5 s flush, floored.
    assert monitor.sampler.capacities == {"m": 100}
    monitor.sampler.rates = {"m": 1.0}
    _requests(monitor, rng, 500, shift=0.0)
    clock.now += 1  # after the profile was stored
    asyncio.run(monitor.flush())
    (first,) = asyncio.run(monitor.check_now("m"))
    assert first["window"]["seen"] == 500
    assert first["samples"] == 100  # kept by the reservoir, standing for 500
    clock.now += 3_600 + 120  # that flush has left the window, and the margin
    (later,) = asyncio.run(monitor.check_now("m"))
    assert later["window"]["seen"] == 0
    start = datetime.fromtimestamp(0, UTC)
    assert store.batches("m", 1, start) == []  # pruned by the check
    registry.close()


def test_drift_then_resolved_events_follow_the_verdict(tmp_path: Any) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    store, clock = DriftStore(registry), Clock()
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(2_000, 4))
    store.put_profile("m", 1, Profile.of({f"x[{i}]": reference[:, i] for i in range(4)}),
                      "dataset")  # fmt: skip
    store.put_settings("m", DriftSettings(sample_rate=1.0, min_samples=100, window_s=60,
                                          multivariate=False))  # fmt: skip
    monitor = DriftMonitor(store, clock=clock, seed=3)
    kinds: list[str] = []
    monitor.events.subscribe(lambda e: kinds.append(e.kind))
    monitor.refresh()
    clock.now += 1
    _requests(monitor, rng, 500, shift=2.0)
    asyncio.run(monitor.check_now("m"))
    clock.now += 120  # the shifted rows leave the 60 s window
    _requests(monitor, rng, 500, shift=0.0)
    asyncio.run(monitor.check_now("m"))
    assert kinds == ["checked", "drift", "checked", "resolved"]
    registry.close()
