"""The per-model summary across `inferd serve --workers 2`: every worker answers with both
workers' requests, the same as /metrics counts; through HTTP, the SDK and the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.servers import Server
from prometheus_client.parser import text_string_to_metric_families

from inferd.cli.main import main
from inferd.client import AsyncClient, Client

pytestmark = pytest.mark.slow
V2_BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
REQUESTS = 40


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path, workers=2) as srv:
        _wait_all_workers_ready(srv.url)
        yield srv


def _wait_all_workers_ready(url: str) -> None:
    """Server() waits for one worker; a run of fresh connections all ready covers both."""
    deadline = time.monotonic() + 60.0
    in_a_row = 0
    while in_a_row < 20:
        if time.monotonic() > deadline:
            raise AssertionError("the workers did not all become ready within 60 s")
        ok = httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
        in_a_row = in_a_row + 1 if ok else 0
        if not ok:
            time.sleep(0.1)


def _scraped_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == "inferd_requests_total" and s.labels["model"] == "linear"
        and s.labels["version"] == "1"
    )  # fmt: skip


async def _async_total(url: str) -> int:
    async with AsyncClient(url) as client:
        return int((await client.model_metrics("linear"))["total"]["requests"])


def test_every_worker_answers_for_both(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(REQUESTS):  # a connection each, so both workers take some
        r = httpx.post(f"{server.url}/v2/models/linear/versions/1/infer", json=V2_BODY)
        assert r.status_code == 200, r.text
    assert _scraped_total(server.url) == REQUESTS
    answers = []
    for _ in range(8):  # fresh connections again: both workers answer some of these
        r = httpx.get(f"{server.url}/v1/models/linear/metrics?minutes=1", timeout=10)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    for answer in answers:
        (v1,) = answer["versions"]
        assert (v1["version"], v1["requests"], v1["errors"]) == ("1", REQUESTS, 0)
        assert v1["latency"]["p99_ms"] is not None
        assert 0 < answer["window_s"] <= 60.0
    with Client(server.url) as client:
        assert client.model_metrics("linear", minutes=1)["total"]["requests"] == REQUESTS
    assert asyncio.run(_async_total(server.url)) == REQUESTS
    assert main(["models", "metrics", "linear", "--url", server.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["requests"] == REQUESTS
    assert main(["models", "metrics", "linear", "--url", server.url, "--minutes", "2"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("linear: the last ")
    assert text.splitlines()[-1].split()[:2] == ["all", str(REQUESTS)]
