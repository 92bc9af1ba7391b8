"""A replica's measured throughput/latency curve, and the SLO arithmetic on it.

A :class:`Curve` holds one :class:`Point` per concurrency step of ``inferd plan measure``:
closed-loop load (each of C clients sends its next request when the previous one answers),
so the concurrency is what was controlled and throughput and latency are what came out.

The two questions asked of it:

- :func:`capacity_at_slo`: the most requests/s one replica answers with its p99 under the
  SLO. Points are taken in concurrency order; the capacity is the highest throughput among
  points within the SLO, raised by linear interpolation (in p99) towards the first point past
  it. Nothing is extrapolated beyond the measured points.
- :func:`latency_at`: the p50/p95/p99 and queue depth expected at an offered load of X
  requests/s per replica, interpolated linearly in throughput along the rising part of the
  curve. This reads a closed-loop curve as if the load were open-loop (arrivals that do not
  wait for answers): the same throughput, the same latency. Real arrivals are burstier, so
  the tail it predicts is optimistic near saturation; past the curve's peak throughput it
  returns None (the replica cannot keep up and its queue grows).

Replicas for a peak (:func:`replicas_for`): ``ceil(peak_rps * headroom / capacity_rps)``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferd.errors import ConfigError

CURVE_FORMAT = 1  # the "format" field of a curve file


@dataclass(frozen=True)
class Point:
    """One concurrency step of a measured curve.

    Attributes:
        concurrency: clients in the closed loop.
        throughput_rps: answered requests per second.
        p50_ms, p95_ms, p99_ms: latency percentiles seen by the clients.
        queue_depth: mean of the server's ``inferd_queue_depth`` during the step (requests
            waiting in the batcher queues), 0 where it was not sampled.
        requests: answered requests in the step.
        errors: failed requests in the step.
    """

    concurrency: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    queue_depth: float = 0.0
    requests: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Curve:
    """A replica's curve: its points in increasing concurrency, and how it was measured."""

    model: str
    points: tuple[Point, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.points:
            raise ConfigError("curve", "points", "expected at least one point, got none")
        levels = [p.concurrency for p in self.points]
        if levels != sorted(set(levels)):
            raise ConfigError(
                "curve", "points", f"expected increasing distinct concurrency, got {levels}"
            )
        for i, p in enumerate(self.points):
            if p.throughput_rps <= 0 or not p.p50_ms <= p.p95_ms <= p.p99_ms:
                raise ConfigError(
                    "curve", f"points[{i}]",
                    "expected throughput_rps > 0 and p50_ms <= p95_ms <= p99_ms, got "
                    f"{p.throughput_rps} rps, {p.p50_ms}/{p.p95_ms}/{p.p99_ms} ms",
                )  # fmt: skip

    @property
    def peak_rps(self) -> float:
        """The highest throughput measured."""
        return max(p.throughput_rps for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CURVE_FORMAT, "model": self.model, "meta": self.meta,
                "points": [asdict(p) for p in self.points]}  # fmt: skip

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "curve") -> Curve:
        """Raises ConfigError naming the field that is missing or wrong."""
        if data.get("format") != CURVE_FORMAT:
            raise ConfigError(
                source, "format", f"expected {CURVE_FORMAT}, got {data.get('format')!r}"
            )
        try:
            points = tuple(Point(**p) for p in data["points"])
            return cls(str(data["model"]), points, dict(data.get("meta", {})))
        except (KeyError, TypeError) as err:
            raise ConfigError(source, "points", f"expected the fields of a Point: {err}") from err

    @classmethod
    def load(cls, path: Path) -> Curve:
        """Read a curve file written by ``inferd plan measure``."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(str(path), "(file)", f"expected a curve JSON file: {err}") from err
        return cls.from_dict(data, str(path))


def capacity_at_slo(curve: Curve, slo_p99_ms: float) -> float:
    """Requests/s one replica answers with p99 at or under ``slo_p99_ms``; 0 if none can.

    See the module docstring for the interpolation.
    """
    best = 0.0
    previous: Point | None = None
    for point in curve.points:
        if point.p99_ms <= slo_p99_ms:
            best = max(best, point.throughput_rps)
        elif previous is not None and previous.p99_ms <= slo_p99_ms:
            share = (slo_p99_ms - previous.p99_ms) / (point.p99_ms - previous.p99_ms)
            between = previous.throughput_rps + share * (
                point.throughput_rps - previous.throughput_rps
            )
            best = max(best, between)
        previous = point
    return best


def replicas_for(peak_rps: float, capacity_rps: float, headroom: float = 1.0) -> int:
    """``ceil(peak_rps * headroom / capacity_rps)``, at least 1.

    Raises:
        ConfigError: capacity 0 (the SLO is out of reach) or headroom below 1.
    """
    if capacity_rps <= 0:
        raise ConfigError("plan", "slo_p99_ms", "no measured point meets the SLO: capacity 0")
    if headroom < 1:
        raise ConfigError("plan", "headroom", f"expected >= 1, got {headroom}")
    return max(1, math.ceil(peak_rps * headroom / capacity_rps - 1e-9))


@dataclass(frozen=True)
class Latency:
    """Expected latency and queue depth of one replica at an offered load."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    queue_depth: float


def _rising(curve: Curve) -> list[Point]:
    """The points up to the first one of highest throughput, with throughput increasing."""
    out: list[Point] = []
    for point in curve.points:
        if not out or point.throughput_rps > out[-1].throughput_rps:
            out.append(point)
        if point.throughput_rps == curve.peak_rps:
            break
    return out


def latency_at(curve: Curve, rps: float) -> Latency | None:
    """Latency at ``rps`` offered to one replica; None above the peak throughput.

    Below the first point's throughput the first point's latency holds (a lone request is
    not faster than concurrency 1 measured it).
    """
    if rps > curve.peak_rps:
        return None
    points = _rising(curve)
    low = points[0]
    if rps <= low.throughput_rps:
        return Latency(
            low.p50_ms, low.p95_ms, low.p99_ms, low.queue_depth * rps / low.throughput_rps
        )
    for high in points[1:]:
        if rps <= high.throughput_rps:
            t = (rps - low.throughput_rps) / (high.throughput_rps - low.throughput_rps)
            return Latency(*(a + t * (b - a) for a, b in (
                (low.p50_ms, high.p50_ms), (low.p95_ms, high.p95_ms),
                (low.p99_ms, high.p99_ms), (low.queue_depth, high.queue_depth),
            )))  # fmt: skip
        low = high
    return Latency(low.p50_ms, low.p95_ms, low.p99_ms, low.queue_depth)


def peak_latency(curve: Curve) -> Latency:
    """Latency at the curve's peak throughput (the first point reaching it)."""
    peak = _rising(curve)[-1]
    return Latency(peak.p50_ms, peak.p95_ms, peak.p99_ms, peak.queue_depth)


def throughput_at(curve: Curve, concurrency: float) -> float:
    """Throughput at a concurrency between measured ones (linear); the last one beyond.

    Raises:
        ConfigError: concurrency below the first measured point (nothing to interpolate).
    """
    points = curve.points
    if concurrency < points[0].concurrency:
        raise ConfigError("plan", "concurrency", f"expected >= {points[0].concurrency} (the "
                          f"curve's first point), got {concurrency}")  # fmt: skip
    for low, high in itertools.pairwise(points):
        if concurrency <= high.concurrency:
            t = (concurrency - low.concurrency) / (high.concurrency - low.concurrency)
            return low.throughput_rps + t * (high.throughput_rps - low.throughput_rps)
    return points[-1].throughput_rps
