"""Curves, the capacity at an SLO, replicas for a peak and latency at a load, on synthetic
curves whose answers are worked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.errors import ConfigError
from inferd.plan.model import (
    Curve,
    Point,
    capacity_at_slo,
    latency_at,
    replicas_for,
    throughput_at,
)


def curve(*rows: tuple[int, float, float], model: str = "m") -> Curve:
    """Points from (concurrency, throughput, p99); p50 = p99 / 3, p95 = p99 / 1.5."""
    return Curve(model, tuple(Point(c, x, p / 3, p / 1.5, p, queue_depth=c / 2)
                              for c, x, p in rows))  # fmt: skip


CURVE = curve((1, 100, 10), (2, 180, 15), (4, 300, 30), (8, 400, 60), (16, 400, 140))


def test_capacity_interpolates_towards_the_first_point_past_the_slo() -> None:
    # 50 ms lies 2/3 of the way from 30 ms (300/s) to 60 ms (400/s): 300 + 2/3 * 100.
    assert capacity_at_slo(CURVE, 50) == pytest.approx(366.667, abs=1e-3)
    assert capacity_at_slo(CURVE, 30) == 300  # exactly a point
    assert capacity_at_slo(CURVE, 1000) == 400  # every point is within: the highest
    assert capacity_at_slo(CURVE, 5) == 0  # not even concurrency 1


def test_capacity_takes_the_best_point_when_throughput_falls_past_the_knee() -> None:
    falling = curve((1, 100, 10), (4, 350, 40), (8, 300, 45), (16, 250, 200))
    assert capacity_at_slo(falling, 50) == 350


def test_replicas_formula() -> None:
    # ceil(1000 * 1.25 / 366.67) = ceil(3.41) = 4; without headroom ceil(2.73) = 3.
    capacity = capacity_at_slo(CURVE, 50)
    assert replicas_for(1000, capacity, 1.25) == 4
    assert replicas_for(1000, capacity) == 3
    assert replicas_for(300, 300) == 1  # exactly full
    assert replicas_for(1, 300) == 1


def test_replicas_refuse_an_unreachable_slo_and_headroom_below_one() -> None:
    with pytest.raises(ConfigError, match="no measured point meets the SLO"):
        replicas_for(100, 0)
    with pytest.raises(ConfigError, match=r"headroom.*got 0\.5"):
        replicas_for(100, 300, 0.5)


def test_latency_between_points_is_linear_in_throughput() -> None:
    at = latency_at(CURVE, 350)  # halfway from 300/s (30 ms) to 400/s (60 ms)
    assert at is not None
    assert at.p99_ms == pytest.approx(45)
    assert at.queue_depth == pytest.approx(3)  # halfway from 2 to 4
    low = latency_at(CURVE, 50)  # below the first point: its latency, queue scaled
    assert low is not None
    assert (low.p99_ms, low.queue_depth) == (10, 0.25)
    assert latency_at(CURVE, 400.5) is None  # past the peak: cannot keep up


def test_throughput_at_a_concurrency() -> None:
    assert throughput_at(CURVE, 6) == pytest.approx(350)
    assert throughput_at(CURVE, 32) == 400
    with pytest.raises(ConfigError, match="concurrency"):
        throughput_at(CURVE, 0.5)


def test_a_curve_survives_its_file(tmp_path: Path) -> None:
    path = tmp_path / "curve.json"
    CURVE.save(path)
    assert Curve.load(path) == CURVE


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ((), "at least one point"),
        ((Point(2, 1, 1, 1, 1), Point(1, 1, 1, 1, 1)), "increasing distinct concurrency"),
        ((Point(1, 0, 1, 1, 1),), r"points\[0\].*got 0 rps"),
        ((Point(1, 5, 3, 2, 1),), r"p50_ms <= p95_ms <= p99_ms.*3/2/1"),
    ],
)
def test_bad_curves_are_named(points: tuple[Point, ...], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Curve("m", points)


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "curve.json"
    path.write_text('{"format": 7, "model": "m", "points": []}')
    with pytest.raises(ConfigError, match="field 'format': expected 1, got 7"):
        Curve.load(path)
