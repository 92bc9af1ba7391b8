"""Publishing over /v1/jobs/{id}/publish and serving the table, in-process: a request with
an entity id (parameter or header) is answered from it, with served_from, until unpublished."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from jobdata import features, write_parquet

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.jobs import JobService
from inferd.jobs.examples import tabular_reference
from inferd.settings import Settings

X = features(200, seed=3)


@pytest.fixture
async def app(tabular_repo: Path, tmp_path: Path) -> AsyncIterator[HttpApp]:
    repo = Path(shutil.copytree(tabular_repo, tmp_path / "repo"))
    yaml = repo / "tabular" / "model.yaml"
    yaml.write_text(yaml.read_text() + "precomputed: {enabled: true, refresh_s: 0.05}\n")
    settings = Settings(home=tmp_path, model_repository=repo, poll_interval_s=0.2)
    application = build_app(settings)
    assert await application.dataplane.start() == {}
    yield application
    await application.dataplane.stop()
    assert application.dataplane.resilience is not None
    await application.dataplane.resilience.close()


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def finished_job(app: HttpApp, tmp_path: Path, version: int | None = None) -> str:
    assert app.management is not None
    assert app.management.jobs is not None
    registry = app.management.jobs.service.registry
    service = JobService(registry, str(tmp_path / "a"), str(tmp_path / "c"), in_server=False)
    path = write_parquet(tmp_path / "in.parquet", X)
    body = {"model": "tabular", "inputs": [str(path)], "output": str(tmp_path / "out"),
            "passthrough": ["id"], "version": version}  # fmt: skip
    job = service.submit(body)
    return service.run_here(job.id, threading.Event()).id


def infer_body(row: int, **parameters: Any) -> dict[str, Any]:
    data = X[row].tolist()
    inputs = [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": data}]
    return {"inputs": inputs, "parameters": parameters} if parameters else {"inputs": inputs}


async def test_publish_serve_and_unpublish(
    app: HttpApp, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id = await asyncio.to_thread(finished_job, app, tmp_path)
    r = await client.post(f"/v1/jobs/{job_id}/publish", json={"key": "id", "max_age": "1d"})
    assert r.status_code == 201, r.text
    table = r.json()
    assert (table["state"], table["rows"], table["max_age_s"]) == ("active", 200, 86400.0)
    assert (await client.get(f"/v1/jobs/{job_id}/publish")).json()["id"] == table["id"]
    # Rows 7's features with entity 9: the table answers (entity 9's prediction), not the model
    r = await client.post("/v2/models/tabular/infer", json=infer_body(7, entity_id="9"))
    assert r.status_code == 200, r.text
    assert r.headers["inferd-served-from"] == "precomputed"
    assert r.json()["parameters"]["served_from"] == "precomputed"
    output = r.json()["outputs"][0]
    assert output["shape"] == [1, 1]
    np.testing.assert_allclose(output["data"], tabular_reference(X[9:10])[:, 0], rtol=1e-5)
    body = {"model_name": "tabular", "input_data": {"x": [X[0].tolist()]}}
    r = await client.post("/predict", headers={"inferd-entity-id": "11"}, json=body)
    assert r.headers["inferd-served-from"] == "precomputed"
    np.testing.assert_allclose(r.json()["predictions"]["y"], tabular_reference(X[11:12]), rtol=1e-5)
    unknown = await client.post("/v2/models/tabular/infer", json=infer_body(7, entity_id="x"))
    assert "inferd-served-from" not in unknown.headers  # online inference on row 7's features
    np.testing.assert_allclose(unknown.json()["outputs"][0]["data"],
                               tabular_reference(X[7:8])[:, 0], rtol=1e-5)  # fmt: skip
    metrics = (await client.get("/metrics")).text
    assert 'inferd_precomputed_hits_total{model="tabular",version="1"} 2.0' in metrics
    assert 'inferd_precomputed_misses_total{model="tabular",version="1"} 1.0' in metrics
    r = await client.delete(f"/v1/jobs/{job_id}/publish")
    assert r.json()["state"] == "deleted"
    served = []  # rows already read may answer until the process reads again (refresh_s)
    for _ in range(100):
        after = await client.post("/v2/models/tabular/infer", json=infer_body(7, entity_id="9"))
        served.append(after.headers.get("inferd-served-from"))
        if served[-1] is None:
            break
        await asyncio.sleep(0.02)
    assert served[-1] is None
    assert (await client.get(f"/v1/jobs/{job_id}/publish")).status_code == 404


async def test_publish_errors_are_400_naming_the_field(
    app: HttpApp, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id = await asyncio.to_thread(finished_job, app, tmp_path)
    r = await client.post(f"/v1/jobs/{job_id}/publish", json={"key": "user_id"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("key: expected a column job")
    r = await client.post(f"/v1/jobs/{job_id}/publish", json={"key": "id", "version": 3})
    assert r.status_code == 400
    assert "version: expected 1" in r.json()["error"]
    assert (await client.post("/v1/jobs/j-none/publish", json={"key": "id"})).status_code == 404
    assert (await client.put(f"/v1/jobs/{job_id}/publish")).status_code == 405
    bad = await client.post("/v2/models/tabular/infer", json=infer_body(1, entity_id=["a", "b"]))
    assert bad.status_code == 400
    assert "parameters.entity_id" in bad.json()["error"]


async def test_a_table_answers_only_for_the_version_that_computed_it(
    tabular_repo: Path, tmp_path: Path
) -> None:
    repo = Path(shutil.copytree(tabular_repo, tmp_path / "repo"))
    shutil.copytree(repo / "tabular" / "1", repo / "tabular" / "2")
    yaml = repo / "tabular" / "model.yaml"
    yaml.write_text(
        yaml.read_text() + "precomputed: {enabled: true}\nversion_policy: {all: true}\n"
    )
    application = build_app(Settings(home=tmp_path, model_repository=repo, poll_interval_s=0.2))
    assert await application.dataplane.start() == {}
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        job_id = await asyncio.to_thread(finished_job, application, tmp_path, 1)
        r = await client.post(f"/v1/jobs/{job_id}/publish", json={"key": "id"})
        assert (r.status_code, r.json()["version"]) == (201, 1)
        one = await client.post("/v2/models/tabular/versions/1/infer",
                                json=infer_body(7, entity_id="9"))  # fmt: skip
        latest = await client.post("/v2/models/tabular/infer", json=infer_body(7, entity_id="9"))
    assert one.headers["inferd-served-from"] == "precomputed"
    assert latest.headers["x-model-version"] == "2"
    assert "inferd-served-from" not in latest.headers  # version 2 has no table: online
    np.testing.assert_allclose(latest.json()["outputs"][0]["data"],
                               tabular_reference(X[7:8])[:, 0], rtol=1e-5)  # fmt: skip
    await application.dataplane.stop()
    assert application.dataplane.resilience is not None
    await application.dataplane.resilience.close()
