"""What this process is carrying: requests waiting in its batcher queues, requests answered
per model, and the readiness condition on queue depth.

:class:`QueueGate` makes ``GET /v2/health/ready`` (and gRPC ``ServerReady``) answer not ready
while more than ``max_depth`` requests wait in this process's batcher queues, all models
together, and ready again at or below it. Liveness never looks at it. With ``--workers N``
each worker answers for its own queues (a probe reaches one of them).
"""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry

from inferd.errors import ConfigError, InferdError
from inferd.monitoring.capacity import CapacityMetrics, parse_capacity
from inferd.serving.manager import ModelManager


def queued_requests(manager: ModelManager) -> int:
    """Requests waiting in the batcher queues of every version this process holds."""
    try:
        return sum(v.batcher.queued for name in manager.names() for v in manager.versions(name)
                   if v.batcher is not None)  # fmt: skip
    except (RuntimeError, InferdError):  # a version came or went meanwhile: count none
        return 0


def answered_by_model(manager: ModelManager) -> dict[str, int]:
    """Requests answered (successes and failures) per model since its versions loaded.

    Called from the metrics sampler's thread: a version coming or going meanwhile leaves
    that model out of this reading rather than failing it.
    """
    out: dict[str, int] = {}
    for name in manager.names():
        try:
            out[name] = sum(v.stats.success.count + v.stats.fail.count
                            for v in manager.versions(name))  # fmt: skip
        except (RuntimeError, InferdError):
            continue
    return out


class QueueGate:
    """Readiness on queue depth: open while at most ``max_depth`` requests wait.

    Args:
        manager: the process's model manager.
        max_depth: requests waiting, all models together, above which it reports not ready.

    Raises:
        ConfigError: a negative ``max_depth``.
    """

    def __init__(self, manager: ModelManager, max_depth: int) -> None:
        if max_depth < 0:
            raise ConfigError("settings", "readiness_max_queue_depth",
                              f"expected >= 0, got {max_depth}")  # fmt: skip
        self.manager = manager
        self.max_depth = max_depth

    def open(self) -> bool:
        """True while the queues hold at most ``max_depth`` requests."""
        return queued_requests(self.manager) <= self.max_depth


def capacity_metrics(
    text: str | None, registry: CollectorRegistry, manager: ModelManager
) -> CapacityMetrics | None:
    """The capacity gauges for ``INFERD_CAPACITY_RPS`` (``model=rps,...``); None without it.

    Raises:
        ConfigError: an entry that is not ``model=rps`` with rps > 0.
    """
    if not text:
        return None
    return CapacityMetrics(registry, parse_capacity(text), partial(answered_by_model, manager))
