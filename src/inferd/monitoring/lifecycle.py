"""Metrics of model version life cycles: loads, unloads, swaps and the state of each version.

None of these run on the request path; they are written when the model manager changes
something. With ``--workers N`` every worker loads its own copy, so the counters add up the
workers' loads and the state gauge counts how many workers hold a version in each state.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Loads take from milliseconds (a tiny ONNX file) to minutes (a large model onto a GPU).
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# The states of inferd.serving.manager.VersionState, in life-cycle order. Kept here as text
# because monitoring sits below serving (dependencies point one way).
STATES = ("LOADING", "READY", "UNLOADING", "UNAVAILABLE")
UNLOAD_REASONS = ("requested", "evicted", "replaced")


class LifecycleMetrics:
    """Load, unload, swap and version-state families.

    Args:
        registry: where to register them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.loads = Counter(
            "inferd_model_loads", "Model version loads, by result (success or failure).",
            ["model", "version", "result"], registry=r,
        )  # fmt: skip
        self.load_duration = Histogram(
            "inferd_model_load_duration_seconds",
            "Time from the start of a successful load to the version taking requests "
            "(read, build the runtime, warm up).",
            ["model"], buckets=LOAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.unloads = Counter(
            "inferd_model_unloads", "Model version unloads, by reason.",
            ["model", "version", "reason"], registry=r,
        )  # fmt: skip
        self.unload_duration = Histogram(
            "inferd_model_unload_duration_seconds",
            "Time to drain a version's queued and running requests and free it.",
            ["model"], buckets=LOAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.swaps = Counter(
            "inferd_model_swaps",
            "Changes of the version that answers requests naming no version, from one "
            "ready copy to another (a promotion, a rollback, or a reload of the same version).",
            ["model"], registry=r,
        )  # fmt: skip
        self.swap_duration = Histogram(
            "inferd_model_swap_duration_seconds",
            "Swaps that loaded the new copy: from the start of its load until it took "
            "requests and the copy it replaced was drained and freed.",
            ["model"], buckets=LOAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.state = Gauge(
            "inferd_model_version_state",
            "1 for the state a version is in, 0 for the others (with several workers: how "
            "many workers hold the version in that state).",
            ["model", "version", "state"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip

    def loaded(self, model: str, version: str, seconds: float) -> None:
        """A load succeeded after ``seconds``."""
        self.loads.labels(model, version, "success").inc()
        self.load_duration.labels(model).observe(seconds)

    def load_failed(self, model: str, version: str) -> None:
        """A load failed (the version is UNAVAILABLE, or a ready copy keeps serving)."""
        self.loads.labels(model, version, "failure").inc()

    def unloaded(self, model: str, version: str, reason: str, seconds: float) -> None:
        """A version was drained and freed; ``reason`` is one of :data:`UNLOAD_REASONS`."""
        self.unloads.labels(model, version, reason).inc()
        self.unload_duration.labels(model).observe(seconds)

    def swapped(self, model: str) -> None:
        """The version answering requests that name none changed to another ready copy."""
        self.swaps.labels(model).inc()

    def swap_took(self, model: str, seconds: float) -> None:
        """A swap that loaded the new copy finished after ``seconds`` (see the family)."""
        self.swap_duration.labels(model).observe(seconds)

    def set_state(self, model: str, version: str, state: str | None) -> None:
        """Mark ``state`` as the version's state; None once the version is dropped."""
        for name in STATES:
            self.state.labels(model, version, name).set(1 if name == state else 0)
