"""Roles on /v1/experiments: operators change experiments, predict keys post outcomes for the
models in their scope and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"
SPEC = {
    "name": "e", "model": "linear",
    "variants": [{"name": "a", "version": 1, "weight": 0.5},
                 {"name": "b", "version": 2, "weight": 0.5}],
}  # fmt: skip
OUTCOME = {"unit_id": "u1", "kind": "conversion", "value": 1}


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    assert await app.dataplane.start() == {}
    assert app.guard is not None
    app.guard.refresh()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def key(client: httpx.AsyncClient, role: str, models: list[str] | None = None) -> str:
    r = await client.post("/v1/keys", json={"role": role, "models": models}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def test_operators_change_predict_keys_post_outcomes_for_their_models(
    client: httpx.AsyncClient,
) -> None:
    operator, predict = await key(client, "operator"), await key(client, "predict", ["linear"])
    other = await key(client, "predict", ["mlp"])
    r = await client.post("/v1/experiments", json=SPEC, headers=bearer(predict))
    assert r.status_code == 403
    r = await client.post("/v1/experiments", json=SPEC, headers=bearer(operator))
    assert r.status_code == 201, r.text
    exp_id = r.json()["id"]
    assert (
        await client.get(f"/v1/experiments/{exp_id}", headers=bearer(predict))
    ).status_code == 403
    path = f"/v1/experiments/{exp_id}/outcomes"
    r = await client.post(path, json=OUTCOME, headers=bearer(predict))
    assert r.status_code == 200, r.text
    r = await client.post(path, json=OUTCOME, headers=bearer(other))
    assert r.status_code == 403
    assert "may not use model 'linear'" in r.json()["error"]
    assert (await client.post(path, json=OUTCOME)).status_code == 401
