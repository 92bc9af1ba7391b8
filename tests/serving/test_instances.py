"""Adaptive instances in a model manager: python models whose calls sleep, real batchers,
and the scaler ticking on a driven clock (one tick per driven second)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from inferd.config import parse_model_config
from inferd.monitoring.metrics import Metrics
from inferd.serving.dataplane import DataPlane
from inferd.serving.instances import InstanceScaler, cpu_share, usable_cores
from inferd.serving.manager import ModelManager, ModelVersion

MODEL_PY = """
import threading
import time

import numpy as np

from inferd.runtimes.python import PythonModel


class Sleeper(PythonModel):
    thread_safe = THREAD_SAFE

    def load(self):
        self.active = 0
        self.lock = threading.Lock()

    def infer(self, inputs):
        with self.lock:
            self.active += 1
            crowded = self.active > 1
        try:
            if crowded and not self.thread_safe:
                raise RuntimeError("two threads in one copy at once")
            time.sleep(0.01)
            return {"y": inputs["x"] * 2}
        finally:
            with self.lock:
                self.active -= 1

    def memory_bytes(self):
        return 1000
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def load(
    manager: ModelManager, root: Path, name: str, instances: Any, thread_safe: bool = True
) -> ModelVersion:
    folder = root / name / "1"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL_PY.replace("THREAD_SAFE", str(thread_safe)))
    data = {
        "platform": "python", "max_batch_size": 1, "instances": instances,
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        "warmup": False,
    }  # fmt: skip
    version = await manager.load_version(
        parse_model_config(data, "test", name), 1, folder / "model.py"
    )
    assert version.state == "READY", version.reason
    return version


@pytest.fixture
async def manager() -> AsyncIterator[ModelManager]:
    manager = ModelManager(Metrics(CollectorRegistry()))
    yield manager
    await manager.close()


async def callers(version: ModelVersion, count: int, stop: asyncio.Event) -> int:
    """``count`` callers sending requests back to back until ``stop``; answers counted."""
    answered = 0

    async def caller() -> None:
        nonlocal answered
        while not stop.is_set():
            assert version.batcher is not None
            outputs, _ = await version.batcher.submit({"x": np.ones(1, dtype=np.float32)})
            assert outputs["y"].tolist() == [2.0]
            answered += 1

    await asyncio.gather(*(caller() for _ in range(count)))
    return answered


async def ticks(scaler: InstanceScaler, clock: Clock, seconds: int) -> list[tuple[str, int]]:
    """One tick per driven second, the load running for a short real interval in between."""
    changes = []
    for _ in range(seconds):
        await asyncio.sleep(0.03)
        clock.now += 1.0
        changes += [(v.name, d.instances) for v, d in await scaler.tick()]
    return changes


def gauge(manager: ModelManager, name: str, metric: str, **labels: str) -> float | None:
    registry = manager._metrics.registry  # the test's own registry
    return registry.get_sample_value(metric, {"model": name, "version": "1", **labels})


async def test_grows_with_sustained_queueing_and_shrinks_when_idle(
    manager: ModelManager, tmp_path: Path
) -> None:
    config = {"min": 1, "max": 3, "grow_after_s": 2, "shrink_after_s": 4}
    version = await load(manager, tmp_path, "sleepy", config)
    clock = Clock()
    scaler = InstanceScaler(manager, manager._metrics, cores=8, clock=clock)
    stop = asyncio.Event()
    load_task = asyncio.ensure_future(callers(version, 8, stop))
    grown = await ticks(scaler, clock, 8)
    assert grown == [("sleepy", 2), ("sleepy", 3)]  # one step per window, then max
    assert gauge(manager, "sleepy", "inferd_model_instances") == 3
    stop.set()
    assert await load_task > 0
    shrunk = await ticks(scaler, clock, 12)
    assert shrunk == [("sleepy", 2), ("sleepy", 1)]
    changes = "inferd_model_instance_changes_total"
    assert gauge(manager, "sleepy", changes, reason="queue_depth") == 2
    assert gauge(manager, "sleepy", changes, reason="idle") == 2
    assert gauge(manager, "sleepy", "inferd_model_instances") == 1
    details = DataPlane(manager, manager._metrics).model_metadata("sleepy", None)["parameters"]
    assert details["instances"] == 1
    assert details["instances_changed"].startswith("2 -> 1 (idle: ")


async def test_a_fixed_count_never_changes(manager: ModelManager, tmp_path: Path) -> None:
    version = await load(manager, tmp_path, "fixed", 2)
    clock = Clock()
    scaler = InstanceScaler(manager, manager._metrics, cores=8, clock=clock)
    stop = asyncio.Event()
    load_task = asyncio.ensure_future(callers(version, 8, stop))
    assert await ticks(scaler, clock, 6) == []
    stop.set()
    await load_task
    assert version.batcher is not None
    assert version.batcher.instances == 2


async def test_a_model_that_is_not_thread_safe_gets_a_copy_per_instance(
    manager: ModelManager, tmp_path: Path
) -> None:
    config = {"min": 2, "max": 3, "grow_after_s": 1}
    version = await load(manager, tmp_path, "single", config, thread_safe=False)
    batcher = version.batcher
    assert batcher is not None
    assert len(batcher.copies()) == 1
    assert version.memory_bytes == 2000
    clock = Clock()
    scaler = InstanceScaler(manager, manager._metrics, cores=8, clock=clock)
    stop = asyncio.Event()
    load_task = asyncio.ensure_future(callers(version, 6, stop))
    assert await ticks(scaler, clock, 4) == [("single", 3)]
    stop.set()
    assert await load_task > 0  # every answer right: no copy ever ran two calls at once
    assert batcher.instances == 3
    assert version.memory_bytes == 3000


def test_cpu_share_divides_the_cores_by_the_workers() -> None:
    assert cpu_share(workers=4, cores=8) == 2
    assert cpu_share(workers=3, cores=8) == 2
    assert cpu_share(workers=4, cores=2) == 1  # never below one
    assert 1 <= cpu_share(workers=1) <= 4096  # this process's affinity mask


def test_a_container_cpu_limit_lowers_the_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    mask = usable_cores(tmp_path / "absent")  # no cgroup file: the affinity mask
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == mask
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text(f"{150000 * mask} 100000\n")  # above the mask: the mask
    assert usable_cores(cpu_max) == mask


async def test_growth_stops_at_the_worker_share_across_models(
    manager: ModelManager, tmp_path: Path
) -> None:
    config = {"min": 1, "max": 4, "grow_after_s": 1}
    first = await load(manager, tmp_path, "a", config)
    second = await load(manager, tmp_path, "b", config)
    clock = Clock()
    # 6 cores over 2 workers: a share of 3 runtime calls for everything this worker runs.
    scaler = InstanceScaler(manager, manager._metrics, workers=2, cores=6, clock=clock)
    stop = asyncio.Event()
    load_tasks = [asyncio.ensure_future(callers(v, 6, stop)) for v in (first, second)]
    changes = await ticks(scaler, clock, 8)
    stop.set()
    await asyncio.gather(*load_tasks)
    assert changes == [("a", 2)]  # then a + b = 3: the share is used up
    assert first.batcher is not None
    assert second.batcher is not None
    assert first.batcher.instances + second.batcher.instances == 3
