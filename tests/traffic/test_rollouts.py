"""Canary rollouts: the spec, the guardrails, the pure decision and the service's actions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferd.errors import Conflict, InvalidInput, ModelNotReady, PromotionRefused
from inferd.events import EventBus, TrafficEvent
from inferd.registry import Registry
from inferd.registry.records import Stage
from inferd.stats import Aggregate
from inferd.traffic.experiments import ExperimentService
from inferd.traffic.guardrails import ArmStats, evaluate
from inferd.traffic.rollout_spec import Guardrails, parse_rollout_spec
from inferd.traffic.rollout_store import RolloutNotFound, RolloutStore
from inferd.traffic.rollouts import RolloutService, decide
from inferd.traffic.store import ExperimentStore

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    reg.create_model("m")
    for _ in range(3):
        reg.register_version("m", platform="onnx", artifact_uri="/a", digest="sha256:0",
                             size_bytes=1)  # fmt: skip
    reg.promote("m", 1)
    yield reg
    reg.close()


def service(registry: Registry, clock: Clock | None = None, **kwargs: Any) -> RolloutService:
    async def promote(model: str, version: int, actor: str) -> Any:
        return await asyncio.to_thread(registry.promote, model, version, actor=actor)

    return RolloutService(RolloutStore(registry), promote, clock=clock or Clock(), **kwargs)


def arm(requests: int, errors: int = 0, latency: float = 10.0, seed: int = 0) -> ArmStats:
    rng = np.random.default_rng(seed)
    stats = ArmStats(Aggregate(seed=seed), Aggregate(seed=seed))
    for i in range(requests):
        stats.latency.add(latency + float(rng.normal(0, 0.5)), i < errors)
        stats.prediction.add(float(rng.normal(0, 1)))
    return stats


# -- the spec --------------------------------------------------------------------------------


def test_spec_defaults_and_refusals() -> None:
    spec = parse_rollout_spec({"model": "m", "candidate": 2})
    assert [s.percent for s in spec.steps] == [1, 5, 25, 50, 100]
    with pytest.raises(
        InvalidInput, match=r"rollout\.steps: expected step percents that increase, got \[\{"
    ):
        parse_rollout_spec({"model": "m", "candidate": 2, "steps": [{"percent": 5},
                                                                    {"percent": 1}]})  # fmt: skip
    with pytest.raises(InvalidInput, match="a last step of 100 percent"):
        parse_rollout_spec({"model": "m", "candidate": 2, "steps": [{"percent": 50}]})
    with pytest.raises(InvalidInput, match=r"rollout\.steps\[0\]\.percent"):
        parse_rollout_spec({"model": "m", "candidate": 2, "steps": [{"percent": 0}]})
    with pytest.raises(InvalidInput, match=r"rollout\.candidate"):
        parse_rollout_spec({"model": "m"})
    with pytest.raises(
        InvalidInput, match=r"rollout\.baseline: expected a version other than the candidate, got 2"
    ):
        parse_rollout_spec({"model": "m", "candidate": 2, "baseline": 2})


# -- guardrails and decisions ----------------------------------------------------------------


def test_guardrails_catch_errors_latency_and_shift_and_pass_a_healthy_canary() -> None:
    rules = Guardrails()
    assert evaluate(rules, arm(200, seed=1), arm(2000, seed=2)) == []
    errors = evaluate(rules, arm(200, errors=40, seed=1), arm(2000, seed=2))
    assert {b["guard"] for b in errors} == {"error_rate", "error_rate_ratio"}
    assert "40 of 200" in errors[0]["message"]
    slow = evaluate(rules, arm(200, latency=30.0, seed=1), arm(2000, seed=2))
    assert [b["guard"] for b in slow] == ["p99_latency_ratio"]
    shifted = arm(200, seed=1)
    shifted.prediction = Aggregate()
    shifted.prediction.extend(np.random.default_rng(3).normal(2, 1, 200))
    assert [b["guard"] for b in evaluate(rules, shifted, arm(2000, seed=2))] == ["prediction_shift"]
    # Too few canary requests: no verdict yet; no baseline (100 %): only the absolute check.
    assert evaluate(rules, arm(49, errors=49), arm(2000)) == []
    assert [b["guard"] for b in evaluate(rules, arm(100, errors=20), arm(0))] == ["error_rate"]


def test_relative_error_check_allows_a_canary_as_bad_as_its_baseline() -> None:
    rules = Guardrails(max_error_rate=None)
    assert evaluate(rules, arm(1000, errors=80), arm(1000, errors=60)) == []
    breaches = evaluate(rules, arm(1000, errors=200), arm(1000, errors=60))
    assert [b["guard"] for b in breaches] == ["error_rate_ratio"]


async def test_decide_holds_until_time_and_requests_then_advances(registry: Registry) -> None:
    clock = Clock()
    svc = service(registry, clock)
    body = {"model": "m", "candidate": 2,
            "steps": [{"percent": 10, "min_duration_s": 60, "min_requests": 100},
                      {"percent": 100, "min_duration_s": 60, "min_requests": 10}]}  # fmt: skip
    record = await svc.start((await svc.create(body)).id)
    healthy = {"canary": arm(100, seed=1), "baseline": arm(900, seed=2)}
    assert decide(record, healthy, START + 30).action == "hold"
    assert decide(record, healthy, START + 30).wait_s == pytest.approx(30)
    few = {"canary": arm(60, seed=1), "baseline": arm(900, seed=2)}
    assert decide(record, few, START + 61).requests_needed == 40
    assert decide(record, healthy, START + 60).action == "advance"
    bad = {"canary": arm(100, errors=20, seed=1), "baseline": arm(900, seed=2)}
    assert decide(record, bad, START + 1).action == "rollback"
    clock.now = START + 60
    last = await svc.advance(record.id, "ops")
    assert decide(last, healthy, START + 120).action == "complete"


# -- the service -----------------------------------------------------------------------------


async def test_create_validates_against_the_registry(registry: Registry) -> None:
    svc = service(registry)
    with pytest.raises(InvalidInput, match=r"rollout\.candidate.*\[1, 2, 3\]"):
        await svc.create({"model": "m", "candidate": 9})
    with pytest.raises(InvalidInput, match="other than the baseline"):
        await svc.create({"model": "m", "candidate": 1})
    record = await svc.create({"model": "m", "candidate": 2}, "alice")
    assert (record.state, record.baseline, record.percent) == ("pending", 1, 0.0)
    with pytest.raises(Conflict, match=f"already has rollout '{record.id}'"):
        await svc.create({"model": "m", "candidate": 3})
    with pytest.raises(RolloutNotFound):
        await svc.get("ro-nope")
    assert [r.id for r in await svc.find("m", "pending")] == [record.id]
    with pytest.raises(InvalidInput, match="state"):
        await svc.find(state="bogus")


async def test_operator_actions_history_audit_and_events(registry: Registry) -> None:
    events: list[TrafficEvent] = []
    bus: EventBus[TrafficEvent] = EventBus()
    bus.subscribe(events.append)
    bus.subscribe(lambda e: 1 / 0)  # a failing subscriber is logged, never raised
    svc = service(registry, events=bus)
    record = await svc.start((await svc.create({"model": "m", "candidate": 2})).id)
    assert (record.state, record.step, record.percent) == ("running", 0, 1.0)
    assert (await svc.pause(record.id, "bob")).state == "paused"
    with pytest.raises(Conflict, match="is paused; it can become paused only from running"):
        await svc.pause(record.id)
    advanced = await svc.advance(record.id, "bob")
    assert (advanced.state, advanced.step, advanced.percent) == ("paused", 1, 5.0)
    assert (await svc.resume(record.id)).state == "running"
    aborted = await svc.abort(record.id, "carol", "wrong candidate")
    assert (aborted.state, aborted.percent, aborted.reason) == ("aborted", 0.0, "wrong candidate")
    assert [h["event"] for h in aborted.history] == [
        "created", "started", "paused", "advanced", "resumed", "aborted"
    ]  # fmt: skip
    assert [e.kind for e in events][-1] == "rollout.aborted"
    actions = [e.action for e in registry.audit("m", 20)]
    assert {"aborted_rollout", "advanced_rollout"} <= set(actions)
    assert registry.get_version("m", 1).stage is Stage.PRODUCTION


async def test_advance_past_the_last_step_promotes_and_a_refused_gate_pauses(
    registry: Registry,
) -> None:
    svc = service(registry)
    record = await svc.start((await svc.create({"model": "m", "candidate": 2,
                                                "steps": [{"percent": 100}]})).id)  # fmt: skip
    done = await svc.advance(record.id, "ops")
    assert (done.state, done.reason) == ("completed", "candidate promoted")
    assert registry.get_version("m", 2).stage is Stage.PRODUCTION

    async def refuse(model: str, version: int, actor: str) -> Any:
        raise PromotionRefused(model, version, "gate accuracy >= 0.9 failed")

    svc = RolloutService(RolloutStore(registry), refuse, clock=Clock())
    record = await svc.start((await svc.create({"model": "m", "candidate": 3,
                                                "steps": [{"percent": 100}]})).id)  # fmt: skip
    with pytest.raises(PromotionRefused):
        await svc.advance(record.id)
    paused = await svc.get(record.id)
    assert paused.state == "paused"
    assert "gate accuracy" in paused.reason
    assert paused.history[-1]["event"] == "promotion_refused"


async def test_a_candidate_that_cannot_load_is_aborted_before_any_traffic(
    registry: Registry,
) -> None:
    async def preload(model: str, version: int) -> None:
        raise ModelNotReady(model, str(version), "FAILED: onnxruntime refused the file")

    svc = service(registry, preload=preload)
    record = await svc.start((await svc.create({"model": "m", "candidate": 2})).id)
    assert (record.state, record.percent, record.percents) == ("aborted", 0.0, [])
    assert "candidate failed to load" in record.reason
    assert "onnxruntime refused" in record.reason


async def test_two_actors_racing_on_one_step_move_it_once(registry: Registry) -> None:
    svc = service(registry)
    record = await svc.start((await svc.create({"model": "m", "candidate": 2})).id)
    first = await svc.advance(record.id, "a", expect_step=0)
    assert first.step == 1
    with pytest.raises(Conflict, match="moved to step 1 meanwhile"):
        await svc.advance(record.id, "b", expect_step=0)


async def test_an_experiment_and_a_rollout_never_route_one_model_together(
    registry: Registry,
) -> None:
    experiments = ExperimentService(ExperimentStore(registry), clock=Clock())
    variants = [{"name": "a", "version": 1, "weight": 0.5}, {"name": "b", "version": 2,
                                                            "weight": 0.5}]  # fmt: skip
    draft = await experiments.create({"name": "e", "model": "m", "variants": variants})
    rollout = await service(registry).create({"model": "m", "candidate": 2})
    with pytest.raises(Conflict, match=f"rollout '{rollout.id}' in progress"):
        await experiments.start(draft.id)
    await service(registry).abort(rollout.id)
    await experiments.start(draft.id)
    with pytest.raises(Conflict, match=f"runs experiment '{draft.id}'"):
        await service(registry).create({"model": "m", "candidate": 2})


def test_step_start_times_survive_the_database(registry: Registry) -> None:
    store = RolloutStore(registry)
    spec = parse_rollout_spec({"model": "m", "candidate": 2})
    now = datetime.fromtimestamp(START, UTC)
    record = store.create(spec, 1, "t", now)
    later = now + timedelta(seconds=5)
    moved = store.transition(record.id, ["pending"], "running", "t", later,
                             {"event": "started"}, step=0)  # fmt: skip
    assert (moved.step_started_at, moved.percents) == (later, [1.0])


async def test_paused_time_does_not_count_toward_a_steps_minimum_duration(
    registry: Registry,
) -> None:
    clock = Clock()
    svc = service(registry, clock)
    body = {"model": "m", "candidate": 2,
            "steps": [{"percent": 10, "min_duration_s": 600, "min_requests": 10},
                      {"percent": 100, "min_duration_s": 600, "min_requests": 10}]}  # fmt: skip
    record = await svc.start((await svc.create(body)).id)
    healthy = {"canary": arm(100, seed=1), "baseline": arm(900, seed=2)}
    clock.now += 200
    await svc.pause(record.id)
    clock.now += 3_600  # an hour paused: more than the step's minimum, and none of it counts
    paused = await svc.get(record.id)
    assert paused.step_active_s(clock.now) == pytest.approx(200)
    assert decide(paused, healthy, clock.now).wait_s == pytest.approx(400)
    await svc.resume(record.id)
    clock.now += 100
    # Read back from the database, as another process or a restarted one sees it.
    resumed = await svc.get(record.id)
    assert resumed.step_active_s(clock.now) == pytest.approx(300)
    decision = decide(resumed, healthy, clock.now)
    assert (decision.action, decision.wait_s) == ("hold", pytest.approx(300))
    assert decide(resumed, healthy, clock.now + 300).action == "advance"
    # A step entered while paused starts its clock only when the rollout resumes.
    await svc.pause(record.id)
    moved = await svc.advance(record.id, "ops")
    clock.now += 1_000
    assert (moved.state, moved.step, moved.step_active_s(clock.now)) == ("paused", 1, 0.0)
    await svc.resume(record.id)
    clock.now += 50
    assert (await svc.get(record.id)).step_active_s(clock.now) == pytest.approx(50)
