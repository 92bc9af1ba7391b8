"""Instance counts of loaded versions: how many runtime calls may run at once, and why it
changed (adaptive ``instances: {min, max}``, inferd.serving.instances).

Written when a version loads, unloads or changes its count, never on the request path. With
``--workers N`` the gauge is summed over workers: the runtime calls the whole server may run
at once for that version.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# inferd.batching.scaling.Change, as text: monitoring sits below batching.
REASONS = ("queue_depth", "idle")


class InstanceMetrics:
    """The instance gauge and the change counter.

    Args:
        registry: where to register them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.count = Gauge(
            "inferd_model_instances",
            "Runtime calls a loaded version may run at once (summed over workers).",
            ["model", "version"], registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.changes = Counter(
            "inferd_model_instance_changes",
            "Changes of an adaptive version's instance count, by reason: queue_depth (one "
            "more after sustained queueing), idle (one fewer after sustained spare capacity).",
            ["model", "version", "reason"], registry=registry,
        )  # fmt: skip

    def set(self, model: str, version: str, instances: int) -> None:
        """The version now has ``instances`` (0 once unloaded)."""
        self.count.labels(model, version).set(instances)

    def changed(self, model: str, version: str, instances: int, reason: str) -> None:
        """An adaptive version went to ``instances`` for ``reason`` (one of :data:`REASONS`)."""
        self.count.labels(model, version).set(instances)
        self.changes.labels(model, version, reason).inc()
