"""`inferd shadow` and the SDK's shadow calls against a real `inferd serve --workers 2`:
the target reaches both workers, and results merge what both mirrored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fixtures.servers import Server

from inferd.cli import shadow
from inferd.cli.main import main
from inferd.client import Client, ClientError


def test_results_text_shows_rates_and_placeholders() -> None:
    pair = {
        "primary_version": "2", "shadow_version": "1", "sampled": 10, "mirrored": 9,
        "compared": 8, "failed": 1, "dropped": 1, "incomparable": 0, "label_rows": 8,
        "exact_match_rate": 0.75, "values": 0, "mean_abs_diff": None, "max_abs_diff": None,
        "shadow_latency_ms": {"mean": 2.0, "p50": 1.5, "p99": 9.0},
        "primary_latency_ms": {"mean": 1.0, "p50": 1.0, "p99": 3.0},
    }  # fmt: skip
    text = shadow.results_text({"model": "m", "config": None, "pairs": [pair]})
    assert "m: no shadow now" in text
    assert "v2 vs shadow v1: 10 sampled, 8 compared, 1 failed, 1 dropped" in text
    assert "exact match 75.00% of 8 label rows; mean |diff| - over 0 values" in text
    assert "shadow 1.5/9" in text
    empty = shadow.results_text({"model": "m", "config": None, "pairs": []})
    assert "(nothing mirrored yet)" in empty


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path, workers=2, extra=["--poll-interval-s", "0.2"]) as srv:
        yield srv


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["shadow", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_shadow_over_two_workers_through_cli_and_sdk(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", server.url, "--json"]
    config = cli(capsys, "set", "linear", "1", "--fraction", "1", "--queue-size", "500", *url)
    assert (config["version"], config["fraction"], config["queue_size"]) == (1, 1.0, 500)
    assert cli(capsys, "show", "linear", *url)["version"] == 1
    time.sleep(1.0)  # five polls: the other worker has the target too
    requests = 60
    with httpx.Client(base_url=server.url) as http:  # a connection each: both workers answer
        for i in range(requests):
            body = {"model_name": "linear", "input_data": {"x": [2.0]}, "request_id": f"r{i}"}
            r = http.post("/predict", json=body, headers={"connection": "close"})
            assert r.json()["predictions"]["y"] == [7.0]  # version 2 answers, not the shadow
    with Client(server.url) as client:
        deadline = time.monotonic() + 30  # each worker flushes every 5 s
        pair: dict[str, Any] = {}
        while time.monotonic() < deadline:
            pairs = client.shadow_results("linear")["pairs"]
            pair = pairs[0] if pairs else {}
            if pair.get("compared") == requests:
                break
            time.sleep(0.5)
        assert (pair["sampled"], pair["compared"], pair["failed"]) == (requests, requests, 0)
        assert pair["processes"] == 2  # both workers mirrored, each flushed its own row
        assert pair["mean_abs_diff"] == pytest.approx(2.0)  # |7 - 5|
        x = {"x": np.array([1.0], dtype=np.float32)}
        assert client.infer("linear", x)["y"].tolist() == [4.0]
        assert client.delete_shadow("linear")["version"] == 1
        with pytest.raises(ClientError) as info:
            client.get_shadow("linear")
        assert info.value.status == 404
        assert client.set_shadow("linear", 1, 0.1)["fraction"] == 0.1
    assert main(["shadow", "results", "linear", "--url", server.url]) == 0
    assert "v2 vs shadow v1: 60 sampled, 60 compared" in capsys.readouterr().out
