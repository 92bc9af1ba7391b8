"""Replay a traffic trace through an HPA policy and a replica's measured curve.

Time advances in 1 s steps over the trace (``time_s,rps`` rows, linear between rows). Each
step:

- **Traffic.** The offered requests/s is split evenly over the ready replicas (a Service
  balancing per request). Each replica answers up to the curve's peak throughput; what is
  left over joins a backlog (a fluid queue) that drains when capacity returns.
- **Latency.** Without a backlog, :func:`inferd.plan.model.latency_at` of the per-replica
  load; with one, the latency at the peak plus the time to drain the backlog. A step whose
  p99 is over the SLO is a violation; with no ready replica at all it is one too.
- **What the HPA reads**, per ready replica (starting replicas report nothing):
  ``inferd_queue_depth`` (the curve's queue depth at that load plus the backlog's share), as
  of the last scrape (15 s); ``inferd_request_duration_seconds_p95`` in seconds, the
  request-weighted mean of the steps' p95 over the adapter rule's 2 minutes (an
  approximation: the real rule takes the quantile of the merged histogram);
  ``inferd_desired_replicas_hint``, the per-replica load over the last 30 s divided by the
  capacity at the SLO.
- **Scaling.** Every sync period (15 s) :class:`inferd.plan.hpa.Autoscaler` decides. New
  replicas serve ``startup_s`` later (scheduling, image, model load, readiness); removed
  ones leave at once, not-yet-ready ones first (as a ReplicaSet picks them).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inferd.errors import ConfigError
from inferd.plan.hpa import Autoscaler, HpaPolicy
from inferd.plan.model import Curve, capacity_at_slo, latency_at, peak_latency, replicas_for

QUEUE_DEPTH = "inferd_queue_depth"
P95 = "inferd_request_duration_seconds_p95"
HINT = "inferd_desired_replicas_hint"
MODELLED = (QUEUE_DEPTH, P95, HINT)


@dataclass(frozen=True)
class Options:
    """Simulation settings; the defaults are a cluster's and the shipped adapter rules'."""

    slo_p99_ms: float
    sync_s: int = 15  # --horizontal-pod-autoscaler-sync-period
    startup_s: int = 30  # scale-up to serving: scheduling, image, model load, readiness
    scrape_s: int = 15  # the ServiceMonitor's interval
    p95_window_s: int = 120  # the adapter rule's rate() window
    hint_window_s: int = 30  # inferd's arrival-rate window for the hint
    initial_replicas: int | None = None  # default: the HPA's minReplicas


@dataclass(frozen=True)
class Step:
    """One second of the simulation."""

    time_s: float
    rps: float
    replicas: int  # spec.replicas set by the HPA
    ready: int
    p99_ms: float  # math.inf: overloaded beyond measure or nothing ready
    backlog: float
    violation: bool


@dataclass(frozen=True)
class Result:
    """A simulation's steps and the figures a reader wants first."""

    steps: tuple[Step, ...]
    capacity_rps: float  # per replica at the SLO
    slo_p99_ms: float

    @property
    def violation_s(self) -> int:
        return sum(s.violation for s in self.steps)

    @property
    def violated_share(self) -> float:
        """Share of the offered requests that arrived in a violating second."""
        total = sum(s.rps for s in self.steps)
        return sum(s.rps for s in self.steps if s.violation) / total if total else 0.0

    @property
    def max_replicas(self) -> int:
        return max(s.replicas for s in self.steps)

    @property
    def replica_seconds(self) -> int:
        return sum(s.replicas for s in self.steps)

    @property
    def static_replicas(self) -> int:
        """What ``inferd plan replicas`` would run all the time for the trace's peak."""
        return replicas_for(max(s.rps for s in self.steps), self.capacity_rps)


def load_trace(path: Path) -> list[tuple[float, float]]:
    """``time_s,rps`` rows (with that header), times increasing, rps >= 0."""
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        trace = [(float(r["time_s"]), float(r["rps"])) for r in rows]
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            str(path), "(file)", f"expected CSV with header time_s,rps: {err}"
        ) from err
    check_trace(trace, str(path))
    return trace


def check_trace(trace: Sequence[tuple[float, float]], source: str = "trace") -> None:
    if len(trace) < 2:
        raise ConfigError(source, "rows", f"expected at least 2 rows, got {len(trace)}")
    for i, ((t0, _), (t1, rps)) in enumerate(itertools.pairwise(trace), start=1):
        if t1 <= t0 or rps < 0 or not math.isfinite(rps):
            raise ConfigError(source, f"line {i + 2}", f"expected time_s > {t0} and rps >= 0, "
                              f"got {t1}, {rps}")  # fmt: skip


def rate_at(trace: Sequence[tuple[float, float]], t: float) -> float:
    """Requests/s at ``t``, linear between rows."""
    for (t0, r0), (t1, r1) in itertools.pairwise(trace):
        if t <= t1:
            return r0 + (r1 - r0) * (max(t, t0) - t0) / (t1 - t0)
    return trace[-1][1]


@dataclass
class _Replica:
    ready_at: float


class _Signals:
    """What the HPA reads, kept over time (scrape delay, windows)."""

    def __init__(self, options: Options, capacity_rps: float) -> None:
        self.options = options
        self.capacity_rps = capacity_rps
        self.depth_scraped = 0.0
        self.p95: deque[tuple[float, float, float]] = deque()  # (time, requests, p95 s)
        self.load: deque[tuple[float, float]] = deque()  # (time, per-replica rps)

    def record(self, t: int, per_replica: float, queue_depth: float, p95_s: float) -> None:
        """One second's figures; ``t`` counts seconds from the trace's start."""
        o = self.options
        if t % o.scrape_s == 0:
            self.depth_scraped = queue_depth
        self.p95.append((t, per_replica, p95_s))
        self.load.append((t, per_replica))
        while self.p95 and self.p95[0][0] <= t - o.p95_window_s:
            self.p95.popleft()
        while self.load and self.load[0][0] <= t - o.hint_window_s:
            self.load.popleft()

    def value(self, name: str) -> float:
        if name == QUEUE_DEPTH:
            return self.depth_scraped
        if name == P95:
            weight = sum(n for _, n, _ in self.p95)
            return sum(n * v for _, n, v in self.p95) / weight if weight else 0.0
        mean = sum(r for _, r in self.load) / len(self.load) if self.load else 0.0
        return mean / self.capacity_rps if self.capacity_rps else 0.0


def simulate(
    curve: Curve, trace: Sequence[tuple[float, float]], policy: HpaPolicy, options: Options
) -> Result:
    """Replay ``trace`` through ``policy`` with replicas that behave like ``curve``."""
    check_trace(trace)
    unknown = [m.name for m in policy.metrics if m.name not in MODELLED]
    if unknown:
        raise ConfigError("hpa", "spec.metrics", f"expected metrics among {', '.join(MODELLED)} "
                          f"(the ones the simulator models), got {', '.join(unknown)}")  # fmt: skip
    capacity = capacity_at_slo(curve, options.slo_p99_ms)
    start = trace[0][0]
    count = policy.min_replicas if options.initial_replicas is None else options.initial_replicas
    replicas = [_Replica(start) for _ in range(count)]
    autoscaler = Autoscaler(policy)
    signals = _Signals(options, capacity)
    backlog = 0.0
    steps = []
    for i in range(int(trace[-1][0] - start) + 1):
        t = start + i
        if i and i % options.sync_s == 0:  # the HPA reads what the past seconds left
            values = {m.name: [signals.value(m.name) if r.ready_at <= t else None
                               for r in replicas] for m in policy.metrics}  # fmt: skip
            wanted = autoscaler.decide(t, len(replicas), values)
            replicas = _resize(replicas, wanted, t + options.startup_s)
        offered = rate_at(trace, t)
        ready = sum(r.ready_at <= t for r in replicas)
        p99, p95, depth, per_replica, backlog = _serve(curve, offered, ready, backlog)
        if ready:
            signals.record(i, per_replica, depth, p95 / 1000)
        steps.append(Step(t, offered, len(replicas), ready, p99, backlog,
                          p99 > options.slo_p99_ms))  # fmt: skip
    return Result(tuple(steps), capacity, options.slo_p99_ms)


def _serve(
    curve: Curve, offered: float, ready: int, backlog: float
) -> tuple[float, float, float, float, float]:
    """One second: (p99 ms, p95 ms, queue depth per replica, rps per replica, backlog)."""
    if ready == 0:
        return math.inf, math.inf, 0.0, 0.0, backlog + offered
    top = curve.peak_rps * ready
    served = min(offered + backlog, top)
    backlog = offered + backlog - served
    per_replica = served / ready
    at = latency_at(curve, per_replica)
    if at is None or backlog > 0:
        peak = peak_latency(curve)
        wait_ms = 1000 * backlog / top
        return (peak.p99_ms + wait_ms, peak.p95_ms + wait_ms,
                peak.queue_depth + backlog / ready, per_replica, backlog)  # fmt: skip
    return at.p99_ms, at.p95_ms, at.queue_depth, per_replica, backlog


def _resize(replicas: list[_Replica], wanted: int, ready_at: float) -> list[_Replica]:
    if wanted > len(replicas):
        return replicas + [_Replica(ready_at) for _ in range(wanted - len(replicas))]
    # A ReplicaSet removes pods that are not ready before ready ones.
    return sorted(replicas, key=lambda r: r.ready_at)[:wanted]
