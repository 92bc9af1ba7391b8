"""The cache and the fallback chain behind the real data plane and HTTP app, in-process."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings
from inferd.types import InferenceRequest

X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


@pytest.fixture
async def app(repo: Path, tmp_path: Path) -> AsyncIterator[HttpApp]:
    config = repo / "linear" / "model.yaml"
    config.write_text(config.read_text() + "cache: {enabled: true, ttl_s: 600}\n")
    application = build_app(Settings(home=tmp_path, model_repository=repo, poll_interval_s=0.2))
    assert await application.dataplane.start() == {}
    yield application
    await application.dataplane.stop()


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def infer(client: httpx.AsyncClient) -> tuple[float, str | None, str]:
    r = await client.post("/v2/models/linear/infer", json=X)
    assert r.status_code == 200, r.text
    body = r.json()
    served = r.headers.get("inferd-served-from")
    assert served == body.get("parameters", {}).get("served_from")
    return float(body["outputs"][0]["data"][0]), served, r.headers["x-model-version"]


async def test_swap_and_rollback_never_serve_the_old_versions_answers(
    client: httpx.AsyncClient,
) -> None:
    assert await infer(client) == (4.0, None, "2")  # y = 3x + 1: computed, then cached
    assert await infer(client) == (4.0, "cache", "2")
    r = await client.post("/v1/models/linear/versions/1/promote")
    assert r.status_code == 200, r.text
    assert await infer(client) == (3.0, None, "1")  # the swap: version 1 computes its own
    assert await infer(client) == (3.0, "cache", "1")
    r = await client.post("/v1/models/linear/default", json={"version": 2})
    assert r.status_code == 200, r.text
    assert await infer(client) == (4.0, "cache", "2")  # version 2's own answer, still valid
    r = await client.post("/v1/models/linear/rollback")
    assert r.status_code == 200, r.text
    assert await infer(client) == (3.0, "cache", "1")


async def test_identical_requests_in_flight_run_once(app: HttpApp) -> None:
    plane = app.dataplane
    request = InferenceRequest("linear", "1", {"x": np.array([5.0], np.float32)})
    copies = [
        InferenceRequest("linear", "1", {"x": request.inputs["x"].copy()}, id=str(i))
        for i in range(16)
    ]
    responses = await asyncio.gather(*(plane.infer(r, "test") for r in copies))
    assert [r.outputs["y"][0] for r in responses] == [11.0] * 16
    assert [r.id for r in responses] == [str(i) for i in range(16)]
    assert (
        sorted(r.parameters.get("served_from", "") for r in responses) == [""] + ["coalesced"] * 15
    )
    stats = plane.statistics("linear", "1")["model_stats"][0]
    assert (stats["execution_count"], stats["inference_count"]) == (1, 1)
    assert stats["inference_stats"]["success"]["count"] == 16
    text = plane.metrics.render().decode()
    assert 'inferd_cache_coalesced_total{model="linear",version="1"} 15.0' in text
    assert 'inferd_cache_misses_total{model="linear",version="1"} 1.0' in text
