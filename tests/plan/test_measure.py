"""``inferd plan measure`` against a real ``inferd serve``; the same server (started with
INFERD_CAPACITY_RPS, one process saves a second start) shows the desired-replicas hint move
with the load. Plus the pieces that need no server."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from fixtures.servers import Server

from inferd.cli.main import main
from inferd.plan.measure import example_inputs, percentile_ms, queue_depth
from inferd.plan.model import Curve


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start!r} in /metrics")


def test_measure_a_live_server_and_its_hint(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("INFERD_CAPACITY_RPS", "linear=10")
    out = tmp_path / "curve.json"
    (tmp_path / "home").mkdir()
    with Server(repo, tmp_path / "home") as server:
        code = main(["plan", "measure", "--url", server.url, "--model", "linear",
                     "--concurrency", "1,4", "--duration", "800ms", "--warmup", "200ms",
                     "--out", str(out)])  # fmt: skip
        assert code == 0
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    curve = Curve.load(out)
    assert [p.concurrency for p in curve.points] == [1, 4]
    for point in curve.points:
        assert point.requests > 0
        assert point.errors == 0
        assert point.throughput_rps == pytest.approx(point.requests / 0.6)
        assert 0 < point.p50_ms <= point.p95_ms <= point.p99_ms
    assert curve.meta["load"] == "closed-loop"
    assert "concurrency    4:" in capsys.readouterr().out
    assert _sample(metrics, 'inferd_capacity_rps{model="linear"}') == 10
    # Hundreds of requests a second against a capacity of 10/s: many replicas' worth.
    assert _sample(metrics, 'inferd_desired_replicas_hint{model="linear"}') > 1


def test_example_inputs_follow_the_metadata() -> None:
    meta = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 256]},
                       {"name": "s", "datatype": "BYTES", "shape": [-1]},
                       {"name": "k", "datatype": "INT64", "shape": [2, -1]}]}  # fmt: skip
    inputs = example_inputs(meta, rows=3)
    assert inputs["x"].shape == (3, 256)
    assert inputs["x"].dtype == np.float32
    assert inputs["s"].shape == (3,)
    assert inputs["s"][0] == b"x"
    assert inputs["k"].shape == (2, 1)
    assert inputs["k"].dtype == np.int64


def test_queue_depth_sums_the_model_versions() -> None:
    text = (
        'inferd_queue_depth{model="mlp",version="1"} 3.0\n'
        'inferd_queue_depth{model="mlp",version="2"} 2.0\n'
        'inferd_queue_depth{model="linear",version="1"} 7.0\n'
        'inferd_queue_duration_seconds_count{model="mlp",version="1"} 9.0\n'
    )
    assert queue_depth(text, "mlp") == 5


def test_percentiles_in_milliseconds() -> None:
    assert percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2)
