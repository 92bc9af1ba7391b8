"""Drift over a real `inferd serve --workers 2`: both workers' samples reach one window,
through the SDK; the gauges on /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fixtures.servers import Server
from sqlalchemy import select

from inferd.client import Client
from inferd.registry import Registry
from inferd.registry.schema import drift_samples

pytestmark = pytest.mark.slow
REQUESTS = 400


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path, workers=2) as srv:
        yield srv


def _sources(home: Path) -> set[str]:
    registry = Registry(f"sqlite:///{home / 'inferd.db'}")
    try:
        with registry.connection() as conn:
            rows = conn.execute(select(drift_samples.c.source).where(
                drift_samples.c.model == "linear")).scalars()  # fmt: skip
            return set(rows)
    finally:
        registry.close()


def test_two_workers_feed_one_window(server: Server) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=3_000)
    with Client(server.url) as client:
        summary = client.set_reference("linear", 1, {"x": x.tolist(), "y": (2 * x + 1).tolist()})
        assert sorted(summary["outputs"]) == ["y"]
        client.set_drift_settings("linear", sample_rate=1.0, min_samples=100,
                                  mmd_permutations=49, window_s=60)  # fmt: skip
        # Both workers read the settings at their next drift tick (every 5 s).
        time.sleep(6)
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0.0]}]}
        for value in rng.normal(1.0, 1.0, REQUESTS):
            body["inputs"][0]["data"] = [float(value)]
            # A connection per request: the kernel spreads them over both workers.
            r = httpx.post(f"{server.url}/v2/models/linear/versions/1/infer", json=body)
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        result = client.drift("linear")["versions"][0]
        while result["window"]["seen"] < REQUESTS and time.monotonic() < deadline:
            time.sleep(1)  # the other worker's samples arrive with its next flush
            result = client.drift("linear")["versions"][0]
    assert result["window"]["seen"] == REQUESTS
    assert result["samples"] == REQUESTS
    assert result["status"] == "drift"
    assert len(_sources(server.home)) == 2
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'inferd_drift_detected{model="linear",version="1"} 1.0' in metrics
