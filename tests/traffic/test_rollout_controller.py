"""The rollout controller on a fake clock: serving processes route and flush, the leader decides.

A simulation drives the real pieces (TrafficPolicy routing through CanaryTraffic, flushes to
a SQLite registry, the controller's lease and decisions) second by second of test time, so
an hour-long schedule runs in about a second of wall time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferd.registry import Registry
from inferd.registry.leases import Lease
from inferd.registry.records import Stage
from inferd.traffic.policy import TrafficPolicy
from inferd.traffic.rollout_controller import RolloutController
from inferd.traffic.rollout_store import RolloutStore
from inferd.traffic.rollouts import RolloutService
from inferd.traffic.store import ExperimentStore
from inferd.types import InferenceRequest, InferenceResponse

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
MINUTES = [{"percent": p, "min_duration_s": 600, "min_requests": 100} for p in (1, 5, 25, 50, 100)]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    reg.create_model("m")
    for _ in range(2):
        reg.register_version("m", platform="onnx", artifact_uri="/a", digest="sha256:0",
                             size_bytes=1)  # fmt: skip
    reg.promote("m", 1)
    yield reg
    reg.close()


def controller(registry: Registry, clock: Clock, owner: str = "a") -> RolloutController:
    async def promote(model: str, version: int, actor: str) -> Any:
        return await asyncio.to_thread(registry.promote, model, version, actor=actor)

    service = RolloutService(RolloutStore(registry), promote, clock=clock)
    lease = Lease(registry, "rollouts", 15.0, owner=owner, clock=clock)
    return RolloutController(service, interval_s=5.0, lease=lease)


@dataclass
class Simulation:
    """Serving processes answering ``rps`` requests a second; the candidate fails some."""

    registry: Registry
    clock: Clock
    rps: int = 200
    candidate_failure: float = 0.0
    processes: list[TrafficPolicy] = field(default_factory=list)
    canary_share: list[tuple[float, float]] = field(default_factory=list)  # (time, share)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        store = ExperimentStore(self.registry)
        self.processes = [TrafficPolicy(store, clock=self.clock, flush_s=5.0, source=f"p{i}")
                          for i in range(2)]  # fmt: skip

    def serve(self, seconds: float) -> None:
        canary, total = 0, int(self.rps * seconds)
        for i in range(total):
            policy = self.processes[i % len(self.processes)]
            request = InferenceRequest("m", None, {}, id=f"r{i}")
            route = policy.route(request) if policy.live else None
            if route is None:
                continue
            canary += route.version == "2"
            failed = route.version == "2" and self.rng.random() < self.candidate_failure
            policy.record(route, request, 500 if failed else 200, 10.0 + self.rng.gauss(0, 1))
            if not failed:
                y = np.array([self.rng.gauss(0, 1)], dtype=np.float32)
                route.annotate(InferenceResponse("m", route.version, {"y": y}))
        self.canary_share.append((self.clock.now, canary / total))

    async def run(self, seconds: int, *controllers: RolloutController, step_s: int = 1) -> None:
        """Every ``step_s``: traffic, then every process's tick (refresh on revision, flush
        every 5 s); every 5 s each controller ticks."""
        for _ in range(seconds // step_s):
            self.serve(step_s)
            self.clock.now += step_s
            for policy in self.processes:
                await policy.tick()
            if int(self.clock.now - START) % 5 == 0:
                for one in controllers:
                    await one.tick()


async def create(registry: Registry, clock: Clock, steps: list[dict[str, Any]]) -> str:
    service = RolloutService(RolloutStore(registry), clock=clock)
    return (await service.create({"model": "m", "candidate": 2, "steps": steps})).id


async def test_a_failing_candidate_is_rolled_back_within_30_s(registry: Registry) -> None:
    clock = Clock()
    sim = Simulation(registry, clock, rps=1000, candidate_failure=0.2)
    rollout_id = await create(registry, clock, MINUTES)
    leader = controller(registry, clock)
    await sim.run(120, leader)
    record = await leader.service.get(rollout_id)
    assert record.state == "rolled_back"
    assert record.breach is not None
    assert "error_rate" in {b["guard"] for b in record.breach}
    assert "canary error rate" in record.reason
    started = datetime.fromisoformat(record.history[1]["at"]).timestamp()
    first_canary = min(t for t, share in sim.canary_share if share > 0)
    last_canary = max(t for t, share in sim.canary_share if share > 0)
    assert first_canary >= started
    assert last_canary - first_canary <= 30.0, sim.canary_share[:40]
    # Until the breach the canary had about its 1 % share, never more.
    assert max(share for _, share in sim.canary_share) <= 0.03
    assert "rolled_back_rollout" in [e.action for e in registry.audit("m", 10)]
    assert leader.service.events.recent[-1].kind == "rollout.rolled_back"
    assert registry.get_version("m", 1).stage is Stage.PRODUCTION


async def test_a_healthy_canary_reaches_100_percent_on_schedule(registry: Registry) -> None:
    clock = Clock()
    sim = Simulation(registry, clock, rps=50)
    rollout_id = await create(registry, clock, MINUTES)
    leader = controller(registry, clock)
    await sim.run(3100, leader, step_s=10)
    record = await leader.service.get(rollout_id)
    assert record.state == "completed", record.reason
    assert record.percents == [1.0, 5.0, 25.0, 50.0, 100.0]
    times = {(h["event"], h.get("step")): datetime.fromisoformat(h["at"]).timestamp()
             for h in record.history}  # fmt: skip
    begun = times[("started", 0)]
    planned = {("advanced", 1): 600, ("advanced", 2): 1200, ("advanced", 3): 1800,
               ("advanced", 4): 2400, ("completed", None): 3000}  # fmt: skip
    for key, offset in planned.items():
        assert abs(times[key] - begun - offset) <= 0.05 * offset, (key, times[key] - begun)
    assert registry.get_version("m", 2).stage is Stage.PRODUCTION
    # The measured share follows each step (50 requests a second: within a few points).
    share_at = dict(sim.canary_share)
    assert share_at[begun + 1510] == pytest.approx(0.25, abs=0.12)


async def test_a_new_controller_on_the_same_database_resumes_the_rollout(
    registry: Registry,
) -> None:
    clock = Clock()
    sim = Simulation(registry, clock, rps=50)
    rollout_id = await create(registry, clock, MINUTES)
    first = controller(registry, clock, owner="old")
    await sim.run(1300, first, step_s=10)
    assert (await first.service.get(rollout_id)).step == 2
    # The old process dies without releasing its lease; a restarted one (new processes, a new
    # controller and lease owner) waits for the lease to run out and carries on.
    sim = Simulation(registry, clock, rps=50)
    second = controller(registry, clock, owner="new")
    await sim.run(2000, second, step_s=10)
    record = await second.service.get(rollout_id)
    assert record.state == "completed"
    assert [h["actor"] for h in record.history if h["event"] == "advanced"] == [
        "inferd-rollouts"
    ] * 4


async def test_of_two_controllers_only_the_lease_holder_acts(registry: Registry) -> None:
    clock = Clock()
    rollout_id = await create(registry, clock, MINUTES)
    one, two = controller(registry, clock, "one"), controller(registry, clock, "two")
    assert rollout_id in await one.tick()
    assert await two.tick() == {}
    assert (one.leader, two.leader) == (True, False)
    for _ in range(10):  # renewed every 5 s: the other never gets in
        clock.now += 5.0
        assert await two.tick() == {}
        await one.tick()
    await one.close()  # a clean shutdown hands the lease over at once
    clock.now += 1.0
    assert rollout_id in await two.tick()
    assert (await two.service.get(rollout_id)).state == "running"


async def test_close_releases_a_lease_taken_by_a_tick_cancelled_at_shutdown(
    registry: Registry,
) -> None:
    clock = Clock()
    rollout_id = await create(registry, clock, MINUTES)
    one, two = controller(registry, clock, "one"), controller(registry, clock, "two")
    # The shutdown cancelled one's tick while its acquire ran in a thread: the lease was taken
    # but the tick never learned it led.
    assert await asyncio.to_thread(one.lease.acquire)
    assert one.leader is False
    await one.close()
    assert rollout_id in await two.tick()  # at once, not 15 s later
    await two.close()
    assert await asyncio.to_thread(one.lease.acquire)  # two's close handed it back too
