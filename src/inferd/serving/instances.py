"""Adaptive instance counts of the versions one server process has loaded.

    InstanceScaler   ticks; per ready version with ``instances: {min, max}`` (max > min):
    │                batcher load sample -> InstanceController -> add or take an instance
    └── cpu_share()  this worker's share of the cores it may run on

**Spreading over ``--workers N``.** Every worker loads every model, so instances multiply by
N. A worker's share is ``max(1, cores // N)``, ``cores`` being the CPUs this process may run on
(``os.sched_getaffinity``, which honours taskset and cgroup cpusets; ``os.cpu_count()`` where
that is missing), lowered to a container's CPU limit (cgroup v2 ``cpu.max``, rounded up: the
affinity mask shows every CPU of the node to a pod limited to two). An adaptive version grows
only while (a) its count is below ``min(max, share)`` and (b) the instances of all ready
versions in the worker, fixed ones included, add up to less than the share. So N workers
together never grow past about one runtime call per core; what a model.yaml asks for outright
(a fixed count, a ``min``) is kept even above the share, and counts toward (b). A model whose
calls do not use a core (a GPU model, one that waits on I/O) can be given a fixed count above
the share.

A runtime that is not thread-safe (``Runtime.thread_safe``) grows by loading a copy, which
the memory budget must fit (``ModelManager.build_copies``, inferd.serving.runtime_build);
shrinking unloads that copy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inferd.batching import Batcher
from inferd.batching.scaling import Change, Decision, InstanceController
from inferd.errors import InsufficientMemory
from inferd.monitoring import Metrics
from inferd.serving.manager import ModelManager, ModelVersion, VersionState

logger = logging.getLogger(__name__)


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, lowered to a cgroup v2 CPU quota (a
    container's CPU limit, ``cpu.max``: ``"200000 100000"`` is 2 CPUs) when there is one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform (macOS)
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 here, or a format we do not know
        pass
    return cores


def cpu_share(workers: int, cores: int | None = None) -> int:
    """Runtime calls one of ``workers`` processes may grow to: ``max(1, cores // workers)``.

    Args:
        workers: server processes (``--workers``).
        cores: CPUs to share; by default :func:`usable_cores`.
    """
    if cores is None:
        cores = usable_cores()
    return max(1, cores // max(workers, 1))


class InstanceScaler:
    """Changes the instance counts of adaptive versions from their measured load.

    Args:
        manager: the versions to watch.
        metrics: where counts and changes go (``inferd_model_instances``).
        workers: server processes sharing the cores (``--workers``).
        cores: CPUs to share; by default those this process may run on.
        clock: seconds, monotonic; tests pass a driven one.
        interval_s: time between two samples in :meth:`run`.
    """

    def __init__(
        self, manager: ModelManager, metrics: Metrics, *, workers: int = 1,
        cores: int | None = None, clock: Callable[[], float] = time.monotonic,
        interval_s: float = 0.5,
    ) -> None:  # fmt: skip
        self.manager = manager
        self.metrics = metrics
        self.share = cpu_share(workers, cores)
        self.clock = clock
        self.interval_s = interval_s
        self._controllers: dict[ModelVersion, InstanceController] = {}

    def ready(self) -> list[ModelVersion]:
        """The ready versions with a batcher, in name and version order."""
        return [
            v for name in self.manager.names() for v in self.manager.versions(name)
            if v.state is VersionState.READY and v.batcher is not None
        ]  # fmt: skip

    async def tick(self) -> list[tuple[ModelVersion, Decision]]:
        """Sample every adaptive version once and apply the changes due; return them."""
        versions = self.ready()
        now = self.clock()
        self._controllers = {v: c for v, c in self._controllers.items() if v in versions}
        total = sum(v.batcher.instances for v in versions if v.batcher is not None)
        applied: list[tuple[ModelVersion, Decision]] = []
        for version in versions:
            batcher = version.batcher
            if batcher is None or not version.config.instances.adaptive:
                continue
            controller = self._controllers.get(version)
            if controller is None:
                controller = self._controllers[version] = InstanceController(
                    version.config.instances
                )
            count = batcher.instances
            ceiling = min(self.share, count + max(self.share - total, 0))
            decision = controller.observe(batcher.sample_load(), now, ceiling)
            if decision is not None and await self._apply(version, batcher, decision):
                total += decision.instances - count
                applied.append((version, decision))
        return applied

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled; a failed tick is logged, not raised."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except Exception:
                logger.exception("instance scaling tick failed (ignored)")

    async def _apply(self, version: ModelVersion, batcher: Batcher, decision: Decision) -> bool:
        before = batcher.instances
        if decision.reason is Change.QUEUE_DEPTH:
            if not await self._grow(version, batcher):
                return False
        else:
            freed = batcher.take_idle_instance()
            if freed is None:
                return False  # every slot busy after all: the next window decides again
            if freed is not batcher.runtime:
                version.memory_bytes -= freed.memory_usage().total
                await asyncio.to_thread(freed.unload)
        change = f"{before} -> {batcher.instances} ({decision.reason.value}: {decision.detail})"
        logger.info("model %s version %s: instances %s", version.name, version.label, change)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        version.instances_changed = f"{change} at {when}"
        self.metrics.instances.changed(
            version.name, version.label, batcher.instances, decision.reason.value
        )
        return True

    async def _grow(self, version: ModelVersion, batcher: Batcher) -> bool:
        runtime = batcher.runtime
        if runtime.thread_safe:
            batcher.add_instance()
            return True
        try:
            copies = await self.manager.build_copies(version, runtime, 1)
        except InsufficientMemory as err:
            logger.warning("model %s version %s: not growing: %s", version.name,
                           version.label, err.message)  # fmt: skip
            return False
        if version.batcher is not batcher or version.state is not VersionState.READY:
            for copy in copies:  # retired while the copy loaded
                await asyncio.to_thread(copy.unload)
            return False
        batcher.add_instance(copies[0])
        return True
