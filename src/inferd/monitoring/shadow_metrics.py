"""Prometheus metrics of shadow traffic, names prefixed ``inferd_shadow_``.

They are registered on the server's metrics registry (:attr:`Metrics.registry`), so with
``--workers N`` every worker's values merge at scrape time like the others. Labels ``model``,
``primary`` (the version that answered the client) and ``shadow`` (the mirrored version).
Rates come from counter ratios, e.g. the exact-match rate of the last five minutes::

    rate(inferd_shadow_label_matches_total[5m]) / rate(inferd_shadow_label_rows_total[5m])

Everything here is observed by the shadow consumer, off the request path, except a drop
(the shadow queue was full), which is one counter increment.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inferd.monitoring.metrics import LATENCY_BUCKETS, observe_many

Pair = tuple[str, str, str]
_PAIR = ["model", "primary", "shadow"]


class ShadowMetrics:
    """The ``inferd_shadow_*`` families; implements ``inferd.traffic.shadow.ShadowObserver``.

    Args:
        registry: the server's metrics registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "inferd_shadow_requests", "Sampled shadow copies by result: compared, "
            "incomparable (outputs differ in names or shapes), failed, dropped (queue full).",
            [*_PAIR, "result"], registry=r,
        )  # fmt: skip
        self.label_rows = Counter(
            "inferd_shadow_label_rows", "Rows compared as labels (integer/bytes, or argmax).",
            _PAIR, registry=r,
        )  # fmt: skip
        self.label_matches = Counter(
            "inferd_shadow_label_matches", "Label rows on which both versions agree exactly.",
            _PAIR, registry=r,
        )  # fmt: skip
        self.values = Counter(
            "inferd_shadow_values", "Float output elements compared.", _PAIR, registry=r
        )
        self.abs_diff = Counter(
            "inferd_shadow_abs_diff", "Sum of |primary - shadow| over compared float elements.",
            _PAIR, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "inferd_shadow_latency_seconds",
            "Time the shadow version took to answer a copy (its group's batcher queue and run).",
            _PAIR, buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue = Gauge(
            "inferd_shadow_queue_depth", "Shadow copies waiting in this model's queue.",
            ["model"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self._results: dict[tuple[str, ...], Any] = {}
        self._pairs: dict[Pair, tuple[Any, ...]] = {}

    def dropped(self, pair: Pair) -> None:
        """Count a copy the full queue refused."""
        self._result(pair, "dropped").inc()

    def answered(
        self, pair: Pair, result: str, comparison: Any, seconds: float, count: int = 1
    ) -> None:
        """Count ``count`` shadow copies that ran together, each taking ``seconds``;
        ``comparison`` (their sums, an ``inferd.traffic.agreement.Comparison``) is None
        when they failed."""
        self._result(pair, result).inc(count)
        latency, label_rows, label_matches, values, abs_diff = self._pair(pair)
        if count == 1:
            latency.observe(seconds)
        else:  # one observation per copy (the count stays in copies), one increment per bucket
            observe_many(latency, [seconds] * count)
        if comparison is None or not comparison.comparable:
            return
        if comparison.label_rows:
            label_rows.inc(comparison.label_rows)
            label_matches.inc(comparison.label_matches)
        if comparison.values:
            values.inc(comparison.values)
            abs_diff.inc(comparison.abs_diff_sum)

    def queue_depth(self, model: str, depth: int) -> None:
        """The model's queue depth as the consumer last saw it."""
        self.queue.labels(model).set(depth)

    # labels() costs more than the observation itself: children are cached per label tuple.
    def _result(self, pair: Pair, result: str) -> Any:
        key = (*pair, result)
        child = self._results.get(key)
        if child is None:
            child = self._results[key] = self.requests.labels(*key)
        return child

    def _pair(self, pair: Pair) -> tuple[Any, ...]:
        children = self._pairs.get(pair)
        if children is None:
            families = (self.latency, self.label_rows, self.label_matches, self.values,
                        self.abs_diff)  # fmt: skip
            children = self._pairs[pair] = tuple(f.labels(*pair) for f in families)
        return children
