"""The experiment lifecycle: legal and illegal transitions, winners, maximum duration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferd.errors import Conflict, InvalidInput, ModelNotFound, PromotionRefused
from inferd.registry import Registry
from inferd.traffic.experiments import ExperimentService
from inferd.traffic.store import ExperimentStore

SPEC: dict[str, Any] = {
    "name": "e",
    "model": "m",
    "max_duration_s": 3600,
    "variants": [
        {"name": "control", "version": 1, "weight": 0.5},
        {"name": "treatment", "version": 2, "weight": 0.5},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    reg.create_model("m")
    for _ in range(2):
        reg.register_version("m", platform="onnx", artifact_uri="/a", digest="sha256:0",
                             size_bytes=1)  # fmt: skip
    yield reg
    reg.close()


def service(registry: Registry, clock: Clock | None = None) -> ExperimentService:
    async def promote(model: str, version: int, actor: str) -> Any:
        return await asyncio.to_thread(registry.promote, model, version, actor=actor)

    return ExperimentService(ExperimentStore(registry), promote, clock=clock or Clock())


async def test_lifecycle_and_winner_promotion(registry: Registry) -> None:
    svc = service(registry)
    record = await svc.create(SPEC, "alice")
    assert record.state == "draft"
    assert (await svc.start(record.id, "bob")).state == "running"
    assert (await svc.pause(record.id)).state == "paused"
    assert (await svc.resume(record.id)).state == "running"
    done = await svc.conclude(record.id, "treatment", "carol")
    assert (done.state, done.winner, done.reason) == ("concluded", "treatment", "winner treatment")
    assert registry.get_model("m").production_version == 2
    actions = [e.action for e in registry.audit("m", limit=3)]
    assert actions == ["concluded_experiment", "stage", "running_experiment"]


async def test_illegal_transitions_are_refused_with_the_states(registry: Registry) -> None:
    svc = service(registry)
    record = await svc.create(SPEC)
    with pytest.raises(Conflict, match="is draft; it can become paused only from running"):
        await svc.pause(record.id)
    with pytest.raises(Conflict, match="is draft; it can become concluded only from running or"):
        await svc.conclude(record.id, None)
    await svc.stop(record.id, reason="wrong model")
    with pytest.raises(Conflict, match="is stopped; it can become running only from draft"):
        await svc.start(record.id)
    with pytest.raises(Conflict, match="weights are final"):
        await svc.set_weights(record.id, [0.5, 0.5])


async def test_one_running_experiment_per_model(registry: Registry) -> None:
    svc = service(registry)
    first, second = await svc.create(SPEC), await svc.create(SPEC)
    await svc.start(first.id)
    with pytest.raises(Conflict, match=f"already runs experiment '{first.id}'"):
        await svc.start(second.id)


async def test_a_gate_refusing_the_winner_leaves_the_experiment_running(
    registry: Registry,
) -> None:
    registry.update_model("m", gates=["accuracy>=0.9"])
    svc = service(registry)
    record = await svc.create(SPEC)
    await svc.start(record.id)
    with pytest.raises(PromotionRefused, match="accuracy"):
        await svc.conclude(record.id, "treatment")
    assert (await svc.get(record.id)).state == "running"
    with pytest.raises(InvalidInput, match="winner"):
        await svc.conclude(record.id, "nobody")
    assert (await svc.conclude(record.id, None)).winner is None


async def test_create_checks_the_model_and_its_versions(registry: Registry) -> None:
    svc = service(registry)
    bad = {**SPEC, "variants": [{**SPEC["variants"][0]}, {**SPEC["variants"][1], "version": 9}]}
    with pytest.raises(InvalidInput, match=r"variants\[1\]\.version.*\[1, 2\]"):
        await svc.create(bad)
    with pytest.raises(ModelNotFound):
        await svc.create({**SPEC, "model": "other"})


async def test_weights_move_and_are_checked(registry: Registry) -> None:
    svc = service(registry)
    record = await svc.create(SPEC)
    moved = await svc.set_weights(record.id, [0.9, 0.1])
    assert moved.weights[-1] == [0.9, 0.1]
    with pytest.raises(InvalidInput, match=r"sum 1\.2"):
        await svc.set_weights(record.id, [0.9, 0.3])
    with pytest.raises(InvalidInput, match="2 numbers"):
        await svc.set_weights(record.id, [1.0])


async def test_an_experiment_past_its_maximum_duration_stops_on_the_clock(
    registry: Registry,
) -> None:
    clock = Clock()
    svc = service(registry, clock)
    record = await svc.create(SPEC)
    await svc.start(record.id)
    clock.now += 3599
    assert svc.expire_overdue() == []
    clock.now += 1
    assert svc.expire_overdue() == [record.id]
    stopped = await svc.get(record.id)
    assert stopped.state == "stopped"
    assert "maximum duration of 3600 s" in stopped.reason
    assert svc.expire_overdue() == []
