"""`inferd models metrics`: the text table, and the refusal without a server."""

from __future__ import annotations

import pytest

from inferd.cli import metrics
from inferd.cli.main import main


def _entry(version: str | None, requests: int, p50: float | None) -> dict[str, object]:
    return {
        "version": version, "requests": requests, "request_rate": requests / 300,
        "errors": 1 if requests else 0, "client_errors": 2 if requests else 0,
        "error_rate": 1 / requests if requests else None,
        "latency": {"p50_ms": p50, "p95_ms": p50, "p99_ms": p50},
    }  # fmt: skip


def test_the_table_has_a_row_per_version_then_the_total() -> None:
    result = {
        "model": "linear", "window_s": 120.0, "requested_window_s": 300.0,
        "versions": [_entry("1", 300, 1.25), _entry("2", 600, 2.5)],
        "total": _entry(None, 900, 2.0),
    }  # fmt: skip
    lines = metrics.human(result).splitlines()
    assert lines[0] == "linear: the last 120 s (of 300 s asked)"
    assert lines[1].split() == ["version", "requests", "req/s", "p50", "ms", "p95", "ms", "p99",
                                "ms", "5xx", "4xx"]  # fmt: skip
    assert lines[2].split() == ["1", "300", "1.00", "1.25", "1.25", "1.25", "0.33%", "2"]
    assert lines[4].split()[:3] == ["all", "900", "3.00"]
    quiet = {**result, "window_s": 300.0, "versions": [], "total": _entry(None, 0, None)}
    lines = metrics.human(quiet).splitlines()
    assert lines[0] == "linear: the last 300 s"
    assert lines[2].split() == ["all", "0", "0.00", "-", "-", "-", "-", "0"]


def test_it_needs_a_running_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--registry-url", "sqlite://", "metrics", "linear"]) != 0
    assert "pass --url" in capsys.readouterr().err
