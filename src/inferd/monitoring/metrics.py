"""Prometheus metrics, names prefixed ``inferd_``.

Counts are exact: every answered request increments its counter once. With ``--workers N``
the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts, prometheus_client then keeps
values in shared files, and :func:`render` merges every worker's values at scrape time.

Labelled children are cached per label tuple because ``labels()`` is the most expensive part
of an observation and runs on every request.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_enabled() -> bool:
    """True when prometheus_client keeps values in shared files (several workers)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The server's metric families and cheap observation methods.

    Args:
        registry: where to register; a fresh registry by default so tests stay isolated.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "inferd_requests", "Answered inference requests.",
            ["model", "version", "protocol", "code"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "inferd_request_duration_seconds", "Time from decoded request to result.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_duration = Histogram(
            "inferd_queue_duration_seconds", "Time a request waited in the batcher queue.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.compute_duration = Histogram(
            "inferd_compute_duration_seconds", "Runtime time of one batch.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "inferd_batch_size", "Rows per runtime call.",
            ["model", "version"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "inferd_queue_depth", "Requests waiting in the batcher queue.",
            ["model", "version"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.model_loaded = Gauge(
            "inferd_model_loaded", "1 while a model version is loaded and ready.",
            ["model", "version"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.model_memory = Gauge(
            "inferd_model_memory_bytes", "Memory measured for a loaded model version.",
            ["model", "version"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self._request_children: dict[tuple[str, str, str, str], Any] = {}
        self._version_children: dict[tuple[str, str], tuple[Any, Any, Any, Any, Any]] = {}

    def _children(self, model: str, version: str) -> tuple[Any, Any, Any, Any, Any]:
        key = (model, version)
        children = self._version_children.get(key)
        if children is None:
            children = (
                self.request_duration.labels(model, version),
                self.queue_duration.labels(model, version),
                self.compute_duration.labels(model, version),
                self.batch_size.labels(model, version),
                self.queue_depth.labels(model, version),
            )
            self._version_children[key] = children
        return children

    def observe_request(
        self, model: str, version: str, protocol: str, code: int, duration_s: float,
        queue_s: float | None = None,
    ) -> None:  # fmt: skip
        """Count one answered request and, when it ran, its latency and queue wait."""
        key = (model, version, protocol, str(code))
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(*key)
        counter.inc()
        if queue_s is not None:
            request_h, queue_h, _, _, _ = self._children(model, version)
            request_h.observe(duration_s)
            queue_h.observe(queue_s)

    def observe_batch(
        self, model: str, version: str, rows: int, compute_s: float, queued: int
    ) -> None:
        """Record one runtime call and the queue depth left behind it."""
        _, _, compute_h, batch_h, depth = self._children(model, version)
        compute_h.observe(compute_s)
        batch_h.observe(rows)
        depth.set(queued)

    def prepare(self, model: str, version: str, protocols: tuple[str, ...]) -> None:
        """Create a version's labelled children ahead of its first request: creating them
        costs far more than an observation, and the first request should not pay it."""
        self._children(model, version)
        for protocol in protocols:
            key = (model, version, protocol, "200")
            if key not in self._request_children:
                self._request_children[key] = self.requests.labels(*key)

    def set_loaded(self, model: str, version: str, loaded: bool, memory_bytes: int = 0) -> None:
        """Mark a version loaded (1) or gone (0) and record its memory."""
        self.model_loaded.labels(model, version).set(1 if loaded else 0)
        self.model_memory.labels(model, version).set(memory_bytes if loaded else 0)
        if not loaded:
            self.queue_depth.labels(model, version).set(0)

    def render(self) -> bytes:
        """The Prometheus text exposition of every worker's values."""
        if multiprocess_enabled():
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(merged))
        return bytes(generate_latest(self.registry))


def mark_worker_dead(pid: int) -> None:
    """Drop a finished worker's live gauges from the shared files."""
    if multiprocess_enabled():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]
