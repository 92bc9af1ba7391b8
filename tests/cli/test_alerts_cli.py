"""inferd alerts check FILE, and the text listing; `alerts list` against a live server is in
tests/monitoring/test_alerts_process.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.cli.alerts import text
from inferd.cli.main import main

EXAMPLE = Path(__file__).parents[2] / "deploy" / "alerts.yaml"


def test_check_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "check", str(EXAMPLE)]) == 0
    assert "7 rules, 1 receivers: ok" in capsys.readouterr().out


def test_check_names_the_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules:\n  - {name: Slow, kind: latency_p99, threshold: fast}\n")
    assert main(["alerts", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "field 'rules[0] (Slow).threshold'" in err
    assert "got 'fast'" in err


def test_serve_refuses_a_bad_alerts_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules: [{name: X, kind: drift, for: later}]\n")
    assert main(["serve", "--alerts-file", str(bad), "--http-port", "0"]) == 2
    assert "field 'rules[0] (X).for'" in capsys.readouterr().err


def test_text_listing() -> None:
    alert = {"state": "firing", "severity": "critical", "rule": "HighP99Latency",
             "labels": {"model": "linear", "version": "1"}, "resolved_at": None,
             "fired_at": "2026-01-01T00:00:00+00:00", "started_at": "x",
             "summary": "slow"}  # fmt: skip
    out = text({"evaluating": True, "active": [alert], "history": []})
    assert "firing" in out
    assert "model=linear,version=1" in out
    assert "history:\n  (none)" in out
    assert "no alerts file" in text({"evaluating": False, "active": [], "history": []})
