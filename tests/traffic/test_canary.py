"""Canary routing in one process: shares, sticky units across steps, what is tallied."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inferd.registry import Registry
from inferd.traffic.policy import TrafficPolicy
from inferd.traffic.rollout_spec import parse_rollout_spec
from inferd.traffic.rollout_store import RolloutStore
from inferd.traffic.store import ExperimentStore
from inferd.types import InferenceRequest, InferenceResponse

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    yield reg
    reg.close()


def running(registry: Registry, **spec: object) -> str:
    store = RolloutStore(registry)
    record = store.create(parse_rollout_spec({"model": "m", "candidate": 2, **spec}), 1, "t", NOW)
    store.transition(record.id, ["pending"], "running", "t", NOW, {"event": "started"}, step=0)
    return record.id


def advance(registry: Registry, rollout_id: str, step: int) -> None:
    RolloutStore(registry).transition(rollout_id, ["running"], "running", "t", NOW,
                                      {"event": "advanced"}, step=step)  # fmt: skip


def request(unit: str | None = None, version: str | None = None) -> InferenceRequest:
    return InferenceRequest("m", version, {}, id="r", routing_key=unit)


def routed(policy: TrafficPolicy, req: InferenceRequest) -> tuple[str, str]:
    route = policy.route(req)
    assert route is not None
    return route.version, route.variant


def test_units_stick_to_the_canary_as_its_share_grows(registry: Registry) -> None:
    rollout_id = running(registry, unit={"kind": "user_id"})
    policy = TrafficPolicy(ExperimentStore(registry))
    policy.refresh()
    units = [f"u{i}" for i in range(20_000)]

    def canary() -> set[str]:
        return {u for u in units if routed(policy, request(u))[0] == "2"}

    at_1 = canary()
    assert len(at_1) / len(units) == pytest.approx(0.01, abs=0.003)
    advance(registry, rollout_id, 1)
    policy.refresh()
    at_5 = canary()
    assert at_1 <= at_5
    assert len(at_5) / len(units) == pytest.approx(0.05, abs=0.005)
    assert policy.route(request("u1", version="1")) is None  # a named version is not routed


def test_requests_without_a_unit_are_drawn_at_the_share(registry: Registry) -> None:
    running(registry, steps=[{"percent": 25}, {"percent": 100}])
    policy = TrafficPolicy(ExperimentStore(registry))
    policy.refresh()
    arms = [routed(policy, request())[1] for _ in range(20_000)]
    assert arms.count("canary") / len(arms) == pytest.approx(0.25, abs=0.015)


def test_only_server_errors_count_and_answers_are_sampled(registry: Registry) -> None:
    rollout_id = running(registry, steps=[{"percent": 100}])
    policy = TrafficPolicy(ExperimentStore(registry), source="p")
    policy.refresh()
    for status in (200, 400, 500, 503):
        route = policy.route(request())
        assert route is not None
        policy.record(route, request(), status, 5.0)
        if status == 200:
            response = InferenceResponse("m", "2", {"y": np.array([1.0, 3.0])})
            route.annotate(response)
            assert response.parameters == {"rollout_id": rollout_id, "rollout_arm": "canary"}
    policy.flush()
    rows = RolloutStore(registry).aggregates(rollout_id, 0)
    canary = rows["canary"][0]
    assert (canary["latency"]["count"], canary["latency"]["conversions"]) == (4, 2)
    assert canary["prediction"]["reservoir"] == [2.0]
    assert policy.canary.collect() == []  # nothing new: nothing to write


def test_an_ended_rollout_stops_routing(registry: Registry) -> None:
    rollout_id = running(registry)
    policy = TrafficPolicy(ExperimentStore(registry))
    policy.refresh()
    assert "m" in policy.live
    RolloutStore(registry).transition(rollout_id, ["running"], "rolled_back", "t", NOW,
                                      {"event": "rolled_back"})  # fmt: skip
    policy.refresh()
    assert policy.live == {}
