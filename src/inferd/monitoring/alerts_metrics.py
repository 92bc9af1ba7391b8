"""The values metric rules compare, from the merged metric families of this server.

What the evaluator can see: :meth:`inferd.monitoring.metrics.Metrics.collect` returns every
worker's families of this replica (with ``--workers N`` they are merged from the shared files,
the same numbers ``/metrics`` serves). The evaluator keeps a ring of snapshots of those
cumulative totals on its own clock and differences them over each rule's window, the way
``increase()`` and ``histogram_quantile()`` work in Prometheus; request counts and latency
buckets come from :func:`inferd.monitoring.window.read_totals`, the per-model summary's reader.
Across several replicas each replica's evaluator sees its own traffic only (the lease makes
one of them evaluate); deployments with replicas alert from Prometheus with
``deploy/prometheus/alerts.yml``, the same rules over every replica's series.

A new evaluator (a fresh leader) needs two snapshots before it judges a window: counters
since the server's start are not "the last minute".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from inferd.monitoring.alerts_config import Rule
from inferd.monitoring.quantiles import histogram_quantile
from inferd.monitoring.window import Series, Totals, read_totals

Key = tuple[str, str]  # (model, version)
KEEP_S = 3600.0  # the longest window answered exactly; older snapshots are dropped


@dataclass
class Snapshot:
    """Cumulative totals at one time."""

    at: float
    requests: Totals
    queue: dict[Key, float] = field(default_factory=dict)
    load_failures: dict[Key, float] = field(default_factory=dict)


def snapshot(at: float, families: Iterable[Metric]) -> Snapshot:
    """Read request totals, queue depths and failed loads from collected families."""
    families = list(families)
    snap = Snapshot(at, read_totals(families))
    for family in families:
        if family.name == "inferd_queue_depth":
            for s in family.samples:
                key = (s.labels.get("model", ""), s.labels.get("version", ""))
                snap.queue[key] = snap.queue.get(key, 0.0) + s.value
        elif family.name == "inferd_model_loads":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels.get("result") == "failure":
                    key = (s.labels.get("model", ""), s.labels.get("version", ""))
                    snap.load_failures[key] = snap.load_failures.get(key, 0.0) + s.value
    return snap


class MetricWindow:
    """A ring of snapshots and the breaching series of each metric rule."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        self.keep_s = keep_s
        self._ring: deque[Snapshot] = deque()

    def record(self, snap: Snapshot) -> None:
        """Add the newest snapshot and drop those older than ``keep_s`` before it."""
        self._ring.append(snap)
        while len(self._ring) > 2 and snap.at - self._ring[1].at >= self.keep_s:
            self._ring.popleft()

    def _baseline(self, window_s: float) -> Snapshot | None:
        """The latest snapshot at least ``window_s`` old, else the oldest one (a shorter
        window); None with fewer than two snapshots."""
        if len(self._ring) < 2:
            return None
        now = self._ring[-1].at
        older = [s for s in list(self._ring)[:-1] if s.at <= now - window_s]
        return older[-1] if older else self._ring[0]

    def breaching(self, rule: Rule) -> dict[Key, float] | None:
        """Series over the rule's threshold now, with their values; None without data yet
        (the evaluator then leaves the rule's alerts as they are)."""
        if not self._ring:
            return None
        current = self._ring[-1]
        if rule.kind == "queue_depth":  # a gauge: its value now
            found = {k: v for k, v in current.queue.items() if v > (rule.threshold or 0.0)}
            return {k: v for k, v in found.items() if rule.applies_to(k[0])}
        base = self._baseline(rule.window)
        if base is None:
            return None
        if rule.kind == "load_failure":
            values = {k: n - base.load_failures.get(k, 0.0)
                      for k, n in current.load_failures.items()}  # fmt: skip
            return {k: v for k, v in values.items() if v > 0 and rule.applies_to(k[0])}
        found = {}
        for key, series in current.requests.items():
            if not key[1] or not rule.applies_to(key[0]):
                continue  # "": refused before a version was chosen
            value = _value(rule, series.minus(base.requests.get(key)))
            if value is not None and value > (rule.threshold or 0.0):
                found[key] = value
        return found


def _value(rule: Rule, delta: Series) -> float | None:
    """p99 latency (seconds) or 5xx share of one version's window; None below min_requests."""
    if rule.kind == "latency_p99":
        bounds = sorted(delta.buckets)
        if not bounds or delta.buckets[bounds[-1]] < rule.min_requests:
            return None
        value = histogram_quantile(0.99, bounds, [delta.buckets[b] for b in bounds])
        return None if math.isnan(value) else value
    requests = sum(delta.codes.values())
    if requests < rule.min_requests:
        return None
    return sum(n for c, n in delta.codes.items() if c.startswith("5")) / requests
