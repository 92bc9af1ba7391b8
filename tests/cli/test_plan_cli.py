"""``inferd plan replicas`` and ``inferd plan simulate`` on synthetic files; `measure`
against a live server is in tests/plan/test_measure.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from inferd.cli.main import main
from inferd.cli.plan import duration_s, levels
from inferd.plan.model import Curve, Point

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def curve(tmp_path: Path) -> Path:
    path = tmp_path / "curve.json"
    Curve("mlp", tuple(Point(c, x, p / 3, p / 1.5, p, queue_depth=c / 2) for c, x, p in
                       ((1, 100, 10), (2, 180, 15), (4, 300, 30), (8, 400, 60))),
          ).save(path)  # fmt: skip
    return path


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text("time_s,rps\n0,300\n120,300\n121,1500\n600,1500\n")
    return path


def test_replicas(curve: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "replicas", "--curve", str(curve), "--slo-p99-ms", "50", "--peak-rps", "1000"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "366.7 requests/s per replica with p99 <= 50 ms" in out
    assert "ceil(peak 1000 x headroom 1.25 / 366.7) = ceil(3.41) = 4 (3 without headroom)" in out
    assert "INFERD_CAPACITY_RPS=mlp=366.67" in out
    assert main([*args, "--headroom", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replicas"] == 3


def test_an_unreachable_slo_is_an_error(curve: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "replicas", "--curve", str(curve), "--slo-p99-ms", "5", "--peak-rps", "10"]
    assert main(args) == 2
    assert "no measured point meets the SLO" in capsys.readouterr().err


def test_simulate_prints_replicas_over_time_and_draws(
    curve: Path, trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "out.png"
    hpa = ROOT / "deploy" / "k8s" / "overlays" / "prod" / "hpa.yaml"
    args = ["plan", "simulate", "--curve", str(curve), "--trace", str(trace),
            "--slo-p99-ms", "50", "--hpa", str(hpa), "--plot", str(png)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("time_s    rps  replicas  ready  p99_ms  over_slo")
    assert "   121   1500         3      3" in out  # the step lands on 3 replicas
    assert "over the SLO:" in out
    assert "of 601 s" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args[:-2], "--json", "--max-replicas", "6"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["max_replicas"] <= 6
    assert summary["violation_s"] > 0
    assert summary["changes"][0]["replicas"] > 3


def test_simulate_names_a_bad_trace(curve: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,rps\n0,10\n5,-1\n")
    args = ["plan", "simulate", "--curve", str(curve), "--trace", str(bad), "--slo-p99-ms", "50"]
    assert main(args) == 2
    assert "line 3" in capsys.readouterr().err


def test_argument_types() -> None:
    assert duration_s("500ms") == 0.5
    assert duration_s("2m") == 120
    assert duration_s("3") == 3
    assert levels("1,2,8") == (1, 2, 8)
    for bad in ("2,1", "0,1", "a"):
        with pytest.raises(argparse.ArgumentTypeError):
            levels(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        duration_s("soon")
