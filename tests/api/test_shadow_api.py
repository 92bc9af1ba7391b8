"""/v1/models/{m}/shadow end to end in-process: configure, mirror through the data plane,
results merged from the registry, roles, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"
SHADOW = "/v1/models/linear/shadow"


async def started(settings: Settings) -> HttpApp:
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    if app.guard is not None:
        app.guard.refresh()
    return app


async def stopped(app: HttpApp) -> None:
    await app.dataplane.traffic.shadow.close()
    await app.dataplane.stop()


@pytest.fixture
async def app(repo: Path, tmp_path: Path) -> AsyncIterator[HttpApp]:
    application = await started(Settings(home=tmp_path, model_repository=repo))
    yield application
    await stopped(application)


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-inferd-actor": "alice"}
    ) as c:
        yield c


async def predict(client: httpx.AsyncClient, rid: str) -> httpx.Response:
    body = {"model_name": "linear", "input_data": {"x": [1.0, 2.0]}, "request_id": rid}
    r = await client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    return r


async def test_configure_show_and_remove(client: httpx.AsyncClient) -> None:
    r = await client.get(SHADOW)
    assert r.status_code == 404
    assert "no shadow traffic configured" in r.json()["error"]
    r = await client.put(SHADOW, json={"version": 1, "fraction": 0.25})
    assert r.status_code == 200, r.text
    assert r.json() | {"updated_at": None} == {
        "model": "linear", "version": 1, "fraction": 0.25, "queue_size": 1000,
        "updated_by": "alice", "updated_at": None,
    }  # fmt: skip
    assert (await client.get(SHADOW)).json()["fraction"] == 0.25
    audit = (await client.get("/v1/models/linear/audit")).json()
    assert audit[0]["action"] == "set_shadow"
    r = await client.delete(SHADOW)
    assert (r.status_code, r.json()["version"]) == (200, 1)
    assert (await client.get(SHADOW)).status_code == 404
    assert (await client.delete(SHADOW)).status_code == 404


async def test_bad_bodies_name_the_field(client: httpx.AsyncClient) -> None:
    r = await client.put(SHADOW, json={"version": 1, "fraction": 2})
    assert r.status_code == 400
    assert "shadow.fraction" in r.json()["error"]
    r = await client.put(SHADOW, json={"version": 7, "fraction": 0.5})
    assert r.status_code == 404
    assert "version '7'" in r.json()["error"]
    r = await client.put("/v1/models/nope/shadow", json={"version": 1, "fraction": 1})
    assert r.status_code == 404
    assert (await client.post(SHADOW, json={})).status_code == 405
    assert (await client.get(f"{SHADOW}/nothing")).status_code == 404


async def test_mirrored_traffic_shows_in_results_and_metrics(
    client: httpx.AsyncClient, app: HttpApp
) -> None:
    r = await client.put(SHADOW, json={"version": 1, "fraction": 1.0})
    assert r.status_code == 200, r.text
    for i in range(20):
        r = await predict(client, f"req-{i}")
        assert r.json()["predictions"]["y"] == [4.0, 7.0]  # version 2 (3x + 1) answers
        assert r.json()["model_version"] == "2"
    await app.dataplane.traffic.shadow.idle()
    r = await client.get(f"{SHADOW}/results")
    assert r.status_code == 200, r.text
    results = r.json()
    assert results["config"]["version"] == 1
    [pair] = results["pairs"]
    assert (pair["primary_version"], pair["shadow_version"]) == ("2", "1")
    assert (pair["sampled"], pair["compared"], pair["failed"], pair["dropped"]) == (20, 20, 0, 0)
    assert pair["values"] == 40
    assert pair["mean_abs_diff"] == pytest.approx(1.5)  # |(3x+1) - (2x+1)| = x, x in {1, 2}
    assert pair["exact_match_rate"] is None  # linear has no labels
    assert pair["shadow_latency_ms"]["p99"] > 0
    metrics = (await client.get("/metrics")).text
    labels = 'model="linear",primary="2",shadow="1"'
    compared = 'model="linear",primary="2",result="compared",shadow="1"'
    assert f"inferd_shadow_requests_total{{{compared}}} 20.0" in metrics
    assert f"inferd_shadow_values_total{{{labels}}} 40.0" in metrics
    # Removed: no more mirroring, the agreement stays readable.
    await client.delete(SHADOW)
    await predict(client, "after")
    results = (await client.get(f"{SHADOW}/results")).json()
    assert results["config"] is None
    assert results["pairs"][0]["sampled"] == 20


async def test_results_merge_every_process_rows(client: httpx.AsyncClient, app: HttpApp) -> None:
    await client.put(SHADOW, json={"version": 1, "fraction": 1.0})
    await predict(client, "one")
    await app.dataplane.traffic.shadow.idle()
    mirror = app.dataplane.traffic.shadow
    await mirror.flush()
    assert mirror.store is not None
    other = {key: agreement.to_dict() for key, agreement in mirror.pairs.items()}
    await asyncio.to_thread(mirror.store.save_aggregates, "worker-2", other, datetime.now(UTC))
    [pair] = (await client.get(f"{SHADOW}/results")).json()["pairs"]
    assert (pair["sampled"], pair["values"]) == (2, 4)


async def test_predict_keys_read_operator_keys_change(repo: Path, tmp_path: Path) -> None:
    app = await started(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def key(role: str, models: list[str] | None = None) -> dict[str, str]:
                r = await client.post("/v1/keys", json={"role": role, "models": models},
                                      headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
                return {"authorization": f"Bearer {r.json()['key']}"}

            reader, operator = await key("predict"), await key("operator")
            other_model = await key("predict", ["mlp"])
            body = {"version": 1, "fraction": 0.5}
            assert (await client.put(SHADOW, json=body, headers=reader)).status_code == 403
            assert (await client.put(SHADOW, json=body, headers=operator)).status_code == 200
            assert (await client.get(SHADOW, headers=reader)).status_code == 200
            assert (await client.get(f"{SHADOW}/results", headers=reader)).status_code == 200
            assert (await client.get(SHADOW, headers=other_model)).status_code == 403
            assert (await client.delete(SHADOW, headers=reader)).status_code == 403
            assert (await client.get(SHADOW)).status_code == 401
    finally:
        await stopped(app)
