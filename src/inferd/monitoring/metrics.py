"""Prometheus metrics, names prefixed ``inferd_``.

Counts are exact: every answered request increments its counter once. With ``--workers N``
the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts, prometheus_client then keeps
values in shared files, and :func:`render` merges every worker's values at scrape time.

Labelled children are cached per label tuple because ``labels()`` is the most expensive part
of an observation and runs on every request. Per-request observations are coalesced: they
are added up in plain Python and applied to the metric values once per event-loop turn
(:meth:`Metrics.flush`), so a batch of 30 answered requests costs one counter increment and
a few histogram bucket increments instead of 90 (each one a locked write to a shared file
with ``--workers N``). Scrapes flush first; another worker's values are at most one loop
turn behind. In-flight counts are kept the same way: plain integers on the request path,
written to their gauge once per loop turn.

Families outside the request path live in their own modules and hang off :class:`Metrics`:
``lifecycle`` (loads, unloads, swaps, version state), ``instances`` (instance counts),
``resources`` (process CPU and memory),
``gpu`` (NVML), ``capacity`` (the desired-replicas hint). docs/metrics.md lists every family;
a test keeps the two in step.
"""

from __future__ import annotations

import asyncio
import os
import threading
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from inferd.monitoring.capacity import CapacityMetrics
from inferd.monitoring.gpu import GpuMetrics, NvmlLoader, import_nvml
from inferd.monitoring.instance_metrics import InstanceMetrics
from inferd.monitoring.lifecycle import LifecycleMetrics
from inferd.monitoring.resources import ResourceMetrics
from inferd.monitoring.window import WindowSummary

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
        load_nvml: returns the NVML module for GPU metrics (tests pass a fake).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, load_nvml: NvmlLoader = import_nvml
    ) -> None:
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
        self.in_flight = Gauge(
            "inferd_requests_in_flight", "Requests a model version has taken and not answered.",
            ["model", "version"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.lifecycle = LifecycleMetrics(r)
        self.instances = InstanceMetrics(r)  # runtime calls at once per version
        self.resources = ResourceMetrics(r)
        self.gpu = GpuMetrics(r, load_nvml)
        self.capacity: CapacityMetrics | None = None  # INFERD_CAPACITY_RPS; set by the app
        self.window = WindowSummary(self.collect)  # /v1/models/{m}/metrics
        self._request_children: dict[tuple[str, str, str, str], Any] = {}
        self._version_children: dict[tuple[str, str], tuple[Any, Any, Any, Any, Any]] = {}
        # Observations not yet applied (see flush); the lock makes render() from a worker
        # thread safe against observations on the event loop.
        self._lock = threading.Lock()
        self._pending_counts: dict[tuple[str, str, str, str], int] = {}
        self._pending_latency: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._flush_scheduled = False
        # In flight now per version, and the versions whose gauge is behind that count.
        self._in_flight: dict[tuple[str, str], int] = {}
        self._in_flight_dirty: set[tuple[str, str]] = set()

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
        """Count one answered request and, when it ran, its latency and queue wait.

        Applied at the end of this event-loop turn (or at once outside a loop).
        """
        key = (model, version, protocol, str(code))
        with self._lock:
            self._pending_counts[key] = self._pending_counts.get(key, 0) + 1
            if queue_s is not None:
                latency = self._pending_latency.get((model, version))
                if latency is None:
                    latency = self._pending_latency[(model, version)] = ([], [])
                latency[0].append(duration_s)
                latency[1].append(queue_s)
            scheduled, self._flush_scheduled = self._flush_scheduled, True
        if not scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop in this thread: apply now
                self.flush()

    def request_started(self, model: str, version: str) -> None:
        """A request was handed to a version; pair with :meth:`request_ended`."""
        self._count_in_flight((model, version), 1)

    def request_ended(self, model: str, version: str) -> None:
        """The request of a :meth:`request_started` was answered, failed or cancelled."""
        self._count_in_flight((model, version), -1)

    def _count_in_flight(self, key: tuple[str, str], step: int) -> None:
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 0) + step
            self._in_flight_dirty.add(key)
            scheduled, self._flush_scheduled = self._flush_scheduled, True
        if not scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop in this thread: apply now
                self.flush()

    def flush(self) -> None:
        """Apply the pending request observations to the metric values."""
        with self._lock:
            counts, self._pending_counts = self._pending_counts, {}
            latency, self._pending_latency = self._pending_latency, {}
            self._flush_scheduled = False
            dirty, self._in_flight_dirty = self._in_flight_dirty, set()
            in_flight = [(key, self._in_flight[key]) for key in dirty]
        for (model, version), count in in_flight:
            self.in_flight.labels(model, version).set(count)
        for key, count in counts.items():
            counter = self._request_children.get(key)
            if counter is None:
                counter = self._request_children[key] = self.requests.labels(*key)
            counter.inc(count)
        for (model, version), (durations, waits) in latency.items():
            request_h, queue_h, _, _, _ = self._children(model, version)
            observe_many(request_h, durations)
            observe_many(queue_h, waits)

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
        self.in_flight.labels(model, version)

    def set_loaded(self, model: str, version: str, loaded: bool, memory_bytes: int = 0) -> None:
        """Mark a version loaded (1) or gone (0) and record its memory."""
        self.model_loaded.labels(model, version).set(1 if loaded else 0)
        self.model_memory.labels(model, version).set(memory_bytes if loaded else 0)
        if not loaded:
            self.queue_depth.labels(model, version).set(0)

    def sample(self) -> None:
        """Sample this process's CPU and memory and the GPUs (blocking; not on the loop)."""
        self.resources.sample()
        self.gpu.sample()
        if self.capacity is not None:
            self.capacity.sample()

    def _source(self) -> CollectorRegistry:
        """Where every worker's values are read: the shared files, or this registry."""
        self.flush()
        if multiprocess_enabled():
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return merged
        return self.registry

    def collect(self) -> Iterable[Metric]:
        """Every worker's metric families (this one's flushed), for in-process readers."""
        return self._source().collect()

    def render(self) -> bytes:
        """The Prometheus text exposition of every worker's values (this one's sampled and
        flushed)."""
        self.sample()
        return bytes(generate_latest(self._source()))


def observe_many(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for every value, with one increment per bucket touched.

    Uses the child's ``_upper_bounds``, ``_buckets`` and ``_sum`` (prometheus_client's own
    layout, stable for years); falls back to observing one by one if they ever change.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)  # observe(): the first bound >= the value
        counts[index] = counts.get(index, 0) + 1
    total.inc(sum(values))
    for index, count in counts.items():
        buckets[index].inc(count)


def mark_worker_dead(pid: int) -> None:
    """Drop a finished worker's live gauges from the shared files."""
    if multiprocess_enabled():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]
