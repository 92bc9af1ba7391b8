"""Drift over the HTTP API in-process: reference, settings, sampling on the request path,
the check at /v1/models/{m}/drift, the gauges at /metrics, roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"
DRIFT = "/v1/models/linear/drift"
REFERENCE = "/v1/models/linear/versions/1/reference"


async def started(settings: Settings) -> HttpApp:
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    if app.guard is not None:
        app.guard.refresh()
    return app


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = await started(Settings(home=tmp_path, model_repository=repo))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


def _reference(rng: np.random.Generator, n: int) -> dict[str, list[float]]:
    x = rng.normal(size=n)
    return {"x": x.tolist(), "y": (2 * x + 1).tolist()}


async def _infer(client: httpx.AsyncClient, values: np.ndarray) -> None:
    for value in values:
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}]}
        r = await client.post("/v2/models/linear/versions/1/infer", json=body)
        assert r.status_code == 200, r.text


async def test_a_shifted_input_is_reported_with_its_prediction(client: httpx.AsyncClient) -> None:
    rng = np.random.default_rng(0)
    r = await client.put(REFERENCE, json={"data": _reference(rng, 3_000)})
    assert r.status_code == 200, r.text
    summary = r.json()
    assert (summary["source"], summary["rows"]) == ("dataset", 3_000)
    assert sorted(summary["inputs"]) == ["x"]
    assert sorted(summary["outputs"]) == ["y"]  # named after the version's output
    settings = {"sample_rate": 1.0, "min_samples": 100, "mmd_permutations": 49, "window_s": 60}
    r = await client.put(f"{DRIFT}/settings", json=settings)
    assert r.status_code == 200, r.text
    assert r.json()["alpha"] == 0.05  # fields left out keep their values
    await _infer(client, rng.normal(1.0, 1.0, 300))
    r = await client.get(DRIFT)
    assert r.status_code == 200, r.text
    (result,) = r.json()["versions"]
    assert result["status"] == "drift"
    assert result["samples"] == 300
    drifted = {(f["kind"], f["name"]) for f in result["features"] if f["drifted"]}
    assert drifted == {("input", "x"), ("output", "y")}
    metrics = (await client.get("/metrics")).text
    assert 'inferd_drift_detected{model="linear",version="1"} 1.0' in metrics
    assert 'inferd_drift_feature_psi{feature="output.y",model="linear",version="1"}' in metrics
    assert (await client.get(REFERENCE)).json()["rows"] == 3_000
    # A recent check is answered as stored (a polling page costs no test), unless refreshed.
    again = (await client.get(DRIFT)).json()["versions"][0]
    assert again["checked_at"] == result["checked_at"]
    fresh = (await client.get(f"{DRIFT}?refresh=true")).json()["versions"][0]
    assert fresh["checked_at"] > result["checked_at"]


async def test_unwatched_models_sample_nothing_and_report_no_version(
    client: httpx.AsyncClient,
) -> None:
    await _infer(client, np.zeros(3))
    r = await client.get(DRIFT)
    assert r.status_code == 200, r.text
    assert r.json()["versions"] == []
    assert (await client.get(f"{DRIFT}/settings")).json()["sample_rate"] == 0.01


async def test_bad_bodies_name_the_field(client: httpx.AsyncClient) -> None:
    r = await client.put(f"{DRIFT}/settings", json={"alpha": 2})
    assert r.status_code == 400
    assert "body.alpha" in r.json()["error"]
    r = await client.put(f"{DRIFT}/settings", json={"window": 5})
    assert r.status_code == 400
    assert "body.window" in r.json()["error"]
    r = await client.put(REFERENCE, json={"uri": "/nonexistent/ref.csv"})
    assert r.status_code == 400
    assert "cannot read" in r.json()["error"]
    r = await client.put(REFERENCE, json={"data": {"x": [1.0]}, "uri": "/x.csv"})
    assert r.status_code == 400
    r = await client.get(REFERENCE)
    assert r.status_code == 404
    assert "no drift reference" in r.json()["error"]
    assert (await client.get(f"{DRIFT}?version=abc")).status_code == 400
    assert (await client.get("/v1/models/nope/drift")).status_code == 404
    assert (await client.post(DRIFT)).status_code == 405


async def test_a_reference_file_is_read_by_the_server(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "ref.csv"
    path.write_text("x,plan\n" + "".join(f"{i / 10},{'ab'[i % 2]}\n" for i in range(200)))
    r = await client.put(REFERENCE, json={"uri": str(path)})
    assert r.status_code == 200, r.text
    assert r.json()["inputs"]["plan"]["kind"] == "categorical"
    assert r.json()["inputs"]["plan"]["categories"] == 2


async def test_predict_keys_read_drift_operator_keys_change_it(repo: Path, tmp_path: Path) -> None:
    app = await started(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def key(role: str, models: list[str] | None = None) -> dict[str, str]:
                r = await client.post("/v1/keys", json={"role": role, "models": models},
                                      headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
                return {"authorization": f"Bearer {r.json()['key']}"}

            reader, operator = await key("predict"), await key("operator")
            other = await key("predict", ["mlp"])
            assert (await client.get(DRIFT, headers=reader)).status_code == 200
            assert (await client.get(DRIFT, headers=other)).status_code == 403
            body = {"sample_rate": 0.5}
            assert (await client.put(f"{DRIFT}/settings", json=body,
                                     headers=reader)).status_code == 403  # fmt: skip
            assert (await client.put(f"{DRIFT}/settings", json=body,
                                     headers=operator)).status_code == 200  # fmt: skip
            assert (await client.get(DRIFT)).status_code == 401
    finally:
        await app.dataplane.stop()
