"""/v1/jobs in-process: submit, progress, cancel, errors; the scheduler resumes orphans."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from jobdata import assert_predictions, features, read_output, write_parquet

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.jobs import JobService
from inferd.settings import Settings


@pytest.fixture
async def app(tabular_repo: Path, tmp_path: Path) -> AsyncIterator[HttpApp]:
    settings = Settings(home=tmp_path, model_repository=tabular_repo, poll_interval_s=0.2)
    application = build_app(settings)
    assert await application.dataplane.start() == {}
    yield application
    await asyncio.to_thread(jobs_of(application).stop)
    await application.dataplane.stop()


def jobs_of(app: HttpApp) -> JobService:
    assert app.management is not None
    assert app.management.jobs is not None
    return app.management.jobs.service


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"x-inferd-actor": "alice"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def wait_state(client: httpx.AsyncClient, job_id: str, *states: str) -> dict[str, Any]:
    for _ in range(300):
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["state"] in states:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']}")


async def test_submit_run_and_show(app: HttpApp, client: httpx.AsyncClient, tmp_path: Path) -> None:
    x = features(3000, seed=4)
    path = write_parquet(tmp_path / "in.parquet", x)
    body = {"model": "tabular", "inputs": [str(path)], "output": str(tmp_path / "out"),
            "passthrough": ["id"], "chunk_rows": 1000}  # fmt: skip
    r = await client.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    queued = r.json()
    assert (queued["state"], queued["created_by"], queued["version"]) == ("queued", "alice", 1)
    jobs_of(app).start()
    job = await wait_state(client, queued["id"], "succeeded", "failed")
    assert job["state"] == "succeeded", job["error"]
    assert (job["rows_total"], job["rows_done"], job["rows_failed"]) == (3000, 3000, 0)
    assert job["output_uri"] == str(tmp_path / "out")
    assert job["eta_s"] == 0
    assert job["rows_per_s"] > 0
    assert job["pinned"]["digest"].startswith("sha256:")
    assert_predictions(read_output(tmp_path / "out"), x, np.arange(3000))
    listed = (await client.get("/v1/jobs?state=succeeded")).json()
    assert [j["id"] for j in listed] == [job["id"]]
    r = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert "succeeded already" in r.json()["error"]


async def test_errors(client: httpx.AsyncClient, tmp_path: Path) -> None:
    r = await client.post("/v1/jobs", json={"model": "tabular", "inputs": ["x"]})
    assert r.status_code == 400
    assert "job.output" in r.json()["error"]
    r = await client.post("/v1/jobs", content=b"{nope")
    assert r.status_code == 400
    assert "invalid JSON" in r.json()["error"]
    assert (await client.get("/v1/jobs/j-ghost")).status_code == 404
    assert (await client.delete("/v1/jobs")).status_code == 405
    assert (await client.get("/v1/jobs/j-ghost/cancel")).status_code == 405
    assert (await client.get("/v1/jobs?state=lost")).status_code == 400


async def test_cancel_queued_and_resume_an_orphan(
    app: HttpApp, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = write_parquet(tmp_path / "in.parquet", features(500))
    service = jobs_of(app)
    spec = {"model": "tabular", "inputs": [str(path)], "passthrough": ["id"]}
    queued = service.submit({**spec, "output": str(tmp_path / "a")})
    r = await client.post(f"/v1/jobs/{queued.id}/cancel")
    assert r.json()["state"] == "cancelled"
    orphan = service.submit({**spec, "output": str(tmp_path / "b")})
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()  # a process of this host that died holding the job
    assert service.store.claim(orphan.id, f"{socket.gethostname()}:{gone.pid}:x", 300)
    service.start()
    job = await wait_state(client, orphan.id, "succeeded", "failed")
    assert (job["state"], job["attempts"], job["rows_done"]) == ("succeeded", 2, 500)
    assert (await client.get(f"/v1/jobs/{queued.id}")).json()["state"] == "cancelled"
    r = await client.post(f"/v1/jobs/{queued.id}/resume")
    assert r.json()["state"] == "queued"
    assert (await wait_state(client, queued.id, "succeeded"))["rows_done"] == 500
