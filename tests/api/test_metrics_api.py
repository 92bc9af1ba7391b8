"""GET /v1/models/{m}/metrics in-process: counts, percentiles, errors, the window's bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.schemas.metrics import ModelMetrics
from inferd.settings import Settings

V2_BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    app.dataplane.metrics.window.snapshot()  # what the sampler does at start-up
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


async def test_summary_counts_each_version_and_the_model(client: httpx.AsyncClient) -> None:
    for _ in range(7):
        r = await client.post("/v2/models/linear/versions/1/infer", json=V2_BODY)
        assert r.status_code == 200
    for _ in range(3):
        assert (await client.post("/v2/models/linear/versions/2/infer", json=V2_BODY)).is_success
    assert (await client.post("/v2/models/linear/infer", content=b"{")).status_code == 400
    r = await client.get("/v1/models/linear/metrics")
    assert r.status_code == 200, r.text
    body = ModelMetrics.model_validate(r.json())  # the documented shape
    assert body.model == "linear"
    assert body.requested_window_s == 300.0
    assert [(v.version, v.requests) for v in body.versions] == [("1", 7), ("2", 3)]
    assert body.total.requests == 11  # with the 400 refused before a version was chosen
    assert body.total.client_errors == 1
    assert body.total.errors == 0
    assert body.total.error_rate == 0.0
    v1 = body.versions[0]
    assert v1.latency.p50_ms is not None
    assert v1.latency.p99_ms is not None
    assert 0 < v1.latency.p50_ms <= v1.latency.p99_ms
    other = (await client.get("/v1/models/mlp/metrics?minutes=0.5")).json()
    assert other["versions"] == []
    assert other["requested_window_s"] == 30.0


@pytest.mark.parametrize("minutes", ["0", "-1", "61", "five", "nan"])
async def test_bad_minutes_are_refused(client: httpx.AsyncClient, minutes: str) -> None:
    r = await client.get(f"/v1/models/linear/metrics?minutes={minutes}")
    assert r.status_code == 400
    assert "minutes" in r.json()["error"]
    assert "at most 60" in r.json()["error"]


async def test_unknown_model_and_wrong_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models/nope/metrics")
    assert r.status_code == 404
    assert "nope" in r.json()["error"]
    assert (await client.post("/v1/models/linear/metrics")).status_code == 405


async def test_a_predict_key_reads_the_models_in_its_scope(repo: Path, tmp_path: Path) -> None:
    admin = {"authorization": "Bearer bootstrap-admin-key-0123456789"}
    settings = Settings(home=tmp_path, model_repository=repo, admin_key=admin["authorization"][7:])
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    assert app.guard is not None
    app.guard.refresh()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/v1/keys", json={"role": "predict", "models": ["linear"]}, headers=admin
            )
            assert r.status_code == 201, r.text
            key = {"authorization": f"Bearer {r.json()['key']}"}
            assert (await client.get("/v1/models/linear/metrics", headers=key)).status_code == 200
            assert (await client.get("/v1/models/mlp/metrics", headers=key)).status_code == 403
            assert (await client.get("/v1/models/linear/metrics")).status_code == 401
            # Reading the summary does not open the rest of /v1/models/{m} to a predict key.
            assert (await client.get("/v1/models/linear", headers=key)).status_code == 403
    finally:
        await app.dataplane.stop()
