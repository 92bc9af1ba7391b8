"""The per-model summary: differences of the merged totals against a snapshot ring."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from inferd.monitoring.metrics import Metrics
from inferd.monitoring.window import ORIGIN_FILE, WindowSummary, counters_age


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _setup() -> tuple[Metrics, WindowSummary, Clock]:
    metrics = Metrics(CollectorRegistry())
    clock = Clock()
    return metrics, WindowSummary(metrics.collect, clock=clock), clock


def test_only_the_window_counts_and_versions_are_apart() -> None:
    metrics, window, clock = _setup()
    window.snapshot()  # t = 0
    for _ in range(50):  # before the window: must not count
        metrics.observe_request("m", "1", "http", 200, 0.002, 0.0)
    for _ in range(6):  # 10-second snapshots for a minute
        clock.now += 10.0
        window.snapshot()
    latencies = np.linspace(0.001, 0.2, 100)
    for value in latencies:
        metrics.observe_request("m", "2", "grpc", 200, float(value), 0.0)
    for code in (500, 503, 400, 404, 404):
        metrics.observe_request("m", "2", "http", code, 0.0)
    metrics.observe_request("m", "", "http", 404, 0.0)  # refused before a version was chosen
    metrics.observe_request("other", "1", "http", 200, 0.1, 0.0)
    clock.now += 60.0  # a minute after the last snapshot... and 2 min after the first
    answer = window.summary("m", 1)
    assert answer["window_s"] == 60.0
    assert answer["requested_window_s"] == 60.0
    (v2,) = answer["versions"]  # version 1 had no request in the window
    assert v2["version"] == "2"
    assert v2["requests"] == 105
    assert v2["errors"] == 2
    assert v2["client_errors"] == 3
    assert v2["error_rate"] == pytest.approx(2 / 105)
    assert v2["request_rate"] == pytest.approx(105 / 60)
    # Percentiles of the successful requests, within the 0.1-0.25 s bucket (p50 ~ 0.1 s).
    assert 50.0 <= v2["latency"]["p50_ms"] <= 100.0
    assert 100.0 <= v2["latency"]["p95_ms"] <= 250.0
    total = answer["total"]
    assert total["version"] is None
    assert total["requests"] == 106
    assert total["client_errors"] == 4
    # A two-minute window reaches back before the first 50 requests were counted.
    assert window.summary("m", 2)["total"]["requests"] == 156


def test_a_young_process_answers_for_the_time_it_has() -> None:
    metrics, window, clock = _setup()
    window.snapshot()
    metrics.observe_request("m", "1", "http", 200, 0.01, 0.0)
    clock.now += 30.0
    answer = window.summary("m", 5)
    # Back to when the counters were zero (the metrics were made just before the snapshot).
    assert answer["window_s"] == pytest.approx(30.0, abs=1.0)
    assert answer["total"]["request_rate"] == pytest.approx(1 / 30, rel=0.05)


def test_no_traffic_and_bad_minutes() -> None:
    _, window, clock = _setup()
    window.snapshot()
    clock.now += 10.0
    answer = window.summary("m", 5)
    assert answer["versions"] == []
    assert answer["total"]["requests"] == 0
    assert answer["total"]["error_rate"] is None
    assert answer["total"]["latency"] == {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    for minutes in (0, -1, 61):
        with pytest.raises(ValueError, match="minutes: expected more than 0 and at most 60"):
            window.summary("m", minutes)


def test_the_ring_keeps_max_minutes_of_snapshots() -> None:
    metrics, window, clock = _setup()
    for _ in range(2 * 360):  # two hours of snapshots
        window.snapshot()
        clock.now += 10.0
        metrics.observe_request("m", "1", "http", 200, 0.01, 0.0)
    answer = window.summary("m", 60)
    assert answer["window_s"] == pytest.approx(3600.0, abs=10.0)
    assert answer["total"]["requests"] == pytest.approx(360, abs=1)


def test_a_late_worker_counts_from_when_the_counters_were_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert counters_age(time.time() - 5.0) == pytest.approx(5.0, abs=0.5)  # the first worker
    # A worker made 60 s later reads the first one's origin, not its own.
    assert counters_age(time.time() + 60.0) == pytest.approx(5.0, abs=0.5)
    (tmp_path / ORIGIN_FILE).write_text("not a time")
    assert counters_age(time.time()) == 0.0  # unreadable: no reach back rather than a wrong one
