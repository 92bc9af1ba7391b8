"""Per-model request rate, latency percentiles and error rate over the last minutes, for
``GET /v1/models/{m}/metrics`` (people without Prometheus).

How it works across ``--workers N``: the request counters and latency histograms already hold
every worker's exact totals, merged from the shared files at read time (what ``/metrics``
exports). Every worker keeps a ring of snapshots of those merged totals, one every 10 s;
an answer is "totals now minus the snapshot from N minutes ago", computed the way Prometheus's
``increase()`` and ``histogram_quantile()`` would over the same series.

Why not a ring of per-10 s buckets in each worker, merged at read time? Each worker's ring
would need a second shared file format, its slots aligned in time with the other workers',
and a dead worker's ring kept until it ages out. Differencing the merged totals needs none of
that: the counters never go down (a finished worker's file is kept), so the difference is
exact whichever worker answers, and nothing is added to the request path. The ring starts
with a zero baseline at the time the counters were zero (see :func:`counters_age`), so a
worker that started late still counts what the others answered before it. What it costs:
windows are whole snapshot intervals, and reach back no further than the start of the server
(``window_s`` says how much was covered).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from inferd.monitoring.quantiles import histogram_quantile

REQUESTS = "inferd_requests"
DURATION = "inferd_request_duration_seconds"
QUANTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))
SNAPSHOT_INTERVAL_S = 10.0
MAX_MINUTES = 60
ORIGIN_FILE = "inferd_origin"  # in the multiprocess folder; not *.db, so no collector reads it


def counters_age(created: float) -> float:
    """Seconds since every counter was zero. In one process: since ``created`` (wall time
    the metrics were made). With ``--workers N``: since the first worker made its metrics; it
    writes that time in the shared folder, which the CLI makes fresh for each run. A worker
    that starts late, or again, thus still answers for the requests the others took before."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return max(0.0, time.time() - created)
    path = os.path.join(folder, ORIGIN_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            with open(path) as origin:
                return max(0.0, time.time() - float(origin.read()))
        except (OSError, ValueError):  # half-written by a worker starting at the same time
            return 0.0
    except OSError:
        return 0.0
    with os.fdopen(fd, "w") as origin:
        origin.write(repr(created))
    return max(0.0, time.time() - created)


@dataclass
class Series:
    """Cumulative counts of one model version: answers by status code, latency buckets."""

    codes: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative

    def minus(self, earlier: Series | None) -> Series:
        if earlier is None:
            return self
        return Series(
            {c: n - earlier.codes.get(c, 0.0) for c, n in self.codes.items()},
            {b: n - earlier.buckets.get(b, 0.0) for b, n in self.buckets.items()},
        )

    def add(self, other: Series) -> None:
        for code, n in other.codes.items():
            self.codes[code] = self.codes.get(code, 0.0) + n
        for bound, n in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + n


Totals = dict[tuple[str, str], Series]


def read_totals(families: Iterable[Metric]) -> Totals:
    """Request counts and latency buckets per (model, version) from collected families."""
    totals: Totals = {}
    for family in families:
        if family.name not in (REQUESTS, DURATION):
            continue
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("model", ""), labels.get("version", ""))
            if sample.name == REQUESTS + "_total":
                series = totals.setdefault(key, Series())
                code = labels.get("code", "")
                series.codes[code] = series.codes.get(code, 0.0) + sample.value
            elif sample.name == DURATION + "_bucket":
                series = totals.setdefault(key, Series())
                bound = float(labels["le"])
                series.buckets[bound] = series.buckets.get(bound, 0.0) + sample.value
    return totals


def describe(series: Series, window_s: float, version: str | None) -> dict[str, Any]:
    """One version's (or the model's) answer: counts, rate, error rates, percentiles."""
    requests = sum(series.codes.values())
    errors = sum(n for c, n in series.codes.items() if c.startswith("5"))
    client_errors = sum(n for c, n in series.codes.items() if c.startswith("4"))
    bounds = sorted(series.buckets)
    cumulative = [series.buckets[b] for b in bounds]
    latency: dict[str, float | None] = {}
    for name, q in QUANTILES:
        value = histogram_quantile(q, bounds, cumulative) if bounds else math.nan
        latency[name] = None if math.isnan(value) else round(value * 1000.0, 4)
    return {
        "version": version,
        "requests": int(requests),
        "request_rate": requests / window_s if window_s > 0 else 0.0,
        "errors": int(errors),
        "client_errors": int(client_errors),
        "error_rate": errors / requests if requests else None,
        "latency": latency,
    }


class WindowSummary:
    """Snapshots of the merged totals and the per-model summaries built from them.

    Args:
        collect: returns the merged metric families (``Metrics.collect``).
        interval_s: how often :meth:`snapshot` is meant to run (the sampler's period).
        max_minutes: the longest window answered; the ring holds that much.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, collect: Callable[[], Iterable[Metric]], *,
        interval_s: float = SNAPSHOT_INTERVAL_S, max_minutes: int = MAX_MINUTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._collect = collect
        self.interval_s = interval_s
        self.max_minutes = max_minutes
        self._clock = clock
        self._ring: deque[tuple[float, Totals]] = deque(
            maxlen=int(max_minutes * 60 / interval_s) + 2
        )
        self._lock = threading.Lock()  # snapshots (sampler thread) vs answers (route thread)
        self._created = time.time()  # the origin file is written at the first snapshot

    def snapshot(self) -> None:
        """Record the totals now (blocking: with several workers it reads their files)."""
        totals = read_totals(self._collect())
        now = self._clock()
        with self._lock:
            if not self._ring:  # when every counter was zero: the first baseline
                self._ring.append((now - counters_age(self._created), {}))
            self._ring.append((now, totals))

    def summary(self, model: str, minutes: float) -> dict[str, Any]:
        """The model's traffic over the last ``minutes`` (blocking, like :meth:`snapshot`).

        Raises:
            ValueError: minutes outside 0 < minutes <= max_minutes.
        """
        if not 0 < minutes <= self.max_minutes:
            raise ValueError(f"minutes: expected more than 0 and at most {self.max_minutes}")
        current = read_totals(self._collect())
        now = self._clock()
        wanted = minutes * 60.0
        with self._lock:
            earlier = [entry for entry in self._ring if entry[0] <= now]
        since, baseline = (
            min(earlier, key=lambda e: abs((now - e[0]) - wanted)) if earlier else (now, {})
        )
        window_s = now - since
        total = Series()
        versions = []
        for (name, version), series in sorted(current.items(), key=_version_order):
            if name != model:
                continue
            delta = series.minus(baseline.get((name, version)))
            if sum(delta.codes.values()) <= 0:
                continue
            total.add(delta)
            if version:  # "": refused before a version was chosen; in the total only
                versions.append(describe(delta, window_s, version))
        return {
            "model": model,
            "window_s": round(window_s, 3),
            "requested_window_s": wanted,
            "total": describe(total, window_s, None),
            "versions": versions,
        }


def _version_order(item: tuple[tuple[str, str], Series]) -> tuple[str, int, str]:
    (name, version), _ = item
    return (name, int(version) if version.isdigit() else -1, version)
