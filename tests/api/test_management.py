"""The /v1 management API and its effect on serving, in-process."""

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.serving.examples import build_linear_onnx
from inferd.settings import Settings

X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


@pytest.fixture
async def app(repo: Path, tmp_path: Path) -> AsyncIterator[HttpApp]:
    application = build_app(Settings(home=tmp_path, model_repository=repo, poll_interval_s=0.2))
    assert await application.dataplane.start() == {}
    yield application
    await application.dataplane.stop()


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-inferd-actor": "alice"}
    ) as c:
        yield c


async def y_of(client: httpx.AsyncClient, version: str | None = None) -> float:
    path = "/v2/models/linear" + (f"/versions/{version}" if version else "") + "/infer"
    r = await client.post(path, json=X)
    assert r.status_code == 200, r.text
    return float(r.json()["outputs"][0]["data"][0])


async def test_list_and_show(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()
    assert [m["name"] for m in models] == ["linear", "mlp"]
    shown = (await client.get("/v1/models/linear")).json()
    assert [(v["version"], v["served"]) for v in shown["versions"]] == [(1, "READY"), (2, "READY")]
    assert shown["versions"][0]["digest"].startswith("sha256:")
    assert (await client.get("/v1/models/nope")).status_code == 404


async def test_promote_switches_default_and_rollback_returns(client: httpx.AsyncClient) -> None:
    assert await y_of(client) == 4.0  # highest ready version (y = 3x + 1) while none promoted
    r = await client.post("/v1/models/linear/versions/1/promote")
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "production"
    assert await y_of(client) == 3.0
    r = await client.post("/v1/models/linear/default", json={"version": 2})
    assert r.json()["stage"] == "production"
    assert await y_of(client) == 4.0
    r = await client.post("/v1/models/linear/rollback")
    assert (r.status_code, r.json()["version"]) == (200, 1)
    assert await y_of(client) == 3.0
    audit = (await client.get("/v1/models/linear/audit")).json()
    assert audit[0]["action"] == "rollback"
    assert audit[0]["actor"] == "alice"


async def test_register_new_version_and_gates(client: httpx.AsyncClient, tmp_path: Path) -> None:
    artifact = tmp_path / "v5.onnx"
    build_linear_onnx(artifact, a=5.0, b=0.0)
    body = {"artifact_uri": str(artifact), "metadata": {"metrics": {"accuracy": 0.7}}}
    r = await client.post("/v1/models/linear/versions", json=body)
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    assert version == 3
    r = await client.patch("/v1/models/linear", json={"gates": ["accuracy >= 0.9"]})
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/models/linear/versions/{version}/promote")
    assert r.status_code == 409
    assert "accuracy is 0.7" in r.json()["error"]
    await client.patch(
        f"/v1/models/linear/versions/{version}", json={"metrics": {"accuracy": 0.95}}
    )
    r = await client.post(f"/v1/models/linear/versions/{version}/promote")
    assert r.status_code == 200, r.text
    assert await y_of(client) == 5.0
    r = await client.post("/v1/models/linear/versions", json={**body, "version": 3})
    assert r.status_code == 409


async def test_bad_management_requests(client: httpx.AsyncClient, tmp_path: Path) -> None:
    r = await client.post("/v1/models/linear/versions", json={"artifact_uri": "/no/such.onnx"})
    assert (r.status_code, "not found" in r.json()["error"]) == (400, True)
    r = await client.post("/v1/models/linear/versions", json={"version": 4})
    assert r.status_code == 400
    assert "artifact_uri" in r.json()["error"]
    r = await client.post("/v1/models/newmodel/versions", json={"artifact_uri": str(tmp_path)})
    assert r.status_code == 400
    assert "pass a config" in r.json()["error"]
    r = await client.post("/v1/models/linear/versions/1/stage", json={"stage": "canary"})
    assert r.status_code == 400
    r = await client.post("/v1/models/linear/versions/1/promote")
    r = await client.delete("/v1/models/linear/versions/1")
    assert r.status_code == 409
    assert "serves production traffic" in r.json()["error"]
    r = await client.post("/v1/models/linear/versions", content=b"{nope")
    assert r.status_code == 400


async def test_failed_version_cannot_be_promoted_and_old_keeps_serving(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await client.post("/v1/models/linear/versions/1/promote")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"garbage")
    r = await client.post("/v1/models/linear/versions", json={"artifact_uri": str(broken)})
    assert r.status_code == 201
    r = await client.post("/v1/models/linear/versions/3/promote")
    assert r.status_code == 409
    assert "failed to load" in r.json()["error"]
    assert await y_of(client) == 3.0
    version = (await client.get("/v1/models/linear/versions/3")).json()
    assert version["status"] == "failed"
    assert "broken.onnx" in version["status_reason"]


async def test_new_model_through_the_api_with_config(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    artifact = tmp_path / "double.onnx"
    build_linear_onnx(artifact, a=2.0, b=0.0)
    body = {"artifact_uri": str(artifact), "config": {"platform": "onnx", "max_batch_size": 8}}
    r = await client.post("/v1/models/double/versions", json=body)
    assert r.status_code == 201, r.text
    r = await client.post("/v2/models/double/infer", json=X)
    assert r.json()["outputs"][0]["data"] == [2.0]


async def test_hot_swap_under_load_loses_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/v1/models/linear/versions/1/promote")
    answers: list[float] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        while not stop.is_set():
            answers.append(await y_of(client))

    workers = [asyncio.ensure_future(hammer()) for _ in range(16)]
    await asyncio.sleep(0.2)
    r = await client.post("/v1/models/linear/versions/2/promote")
    assert r.status_code == 200
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*workers)  # any failed request raised in y_of
    assert set(answers) == {3.0, 4.0}
    assert answers[-1] == 4.0
    switch = answers.index(4.0)
    assert 3.0 not in answers[switch + 16 :]  # after the switch only in-flight ones are old


async def test_repository_watch_registers_new_versions(app: HttpApp, repo: Path) -> None:
    runner = asyncio.ensure_future(app.dataplane.control.run())  # type: ignore[union-attr]
    try:
        shutil.copytree(repo / "linear" / "2", repo / "linear" / "7")
        for _ in range(100):
            await asyncio.sleep(0.05)
            names = [v.version for v in app.dataplane.manager.versions("linear")]
            if 7 in names:
                break
        assert 7 in names
    finally:
        runner.cancel()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("PATCH", "/v1/models/linear", {"config": None}, 400, "model.config"),
        ("PATCH", "/v1/models/linear", {"config": {"platform": "nope"}}, 400, "platform"),
        ("PATCH", "/v1/models/linear", {"tags": "a,b"}, 400, "model.tags"),
        ("PATCH", "/v1/models/linear", {}, 400, "nothing to change"),
        ("PATCH", "/v1/models/linear/versions/1", {"pinned": "yes"}, 400, "metadata.pinned"),
        ("PATCH", "/v1/models/linear/versions/1", {"tags": [1]}, 400, "metadata.tags"),
        ("GET", "/v1/models?stage=", None, 400, "stage"),
        ("GET", "/v1/audit?limit=10001", None, 400, "limit"),
        ("GET", "/v1/models/linear/audit?limit=0", None, 400, "limit"),
        ("TRACE", "/v1/audit", None, 405, "GET"),
        ("PUT", "/v1/models/linear/versions", None, 405, "PUT"),
    ],
)
async def test_bad_management_requests_name_the_field(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int, needle: str
) -> None:
    r = await client.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    if status == 405:
        assert r.headers["allow"] in ("GET", "GET, POST")
    shown = (await client.get("/v1/models/linear")).json()
    assert shown["config"]["platform"] == "onnx"  # nothing changed
