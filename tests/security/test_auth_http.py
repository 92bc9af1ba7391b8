"""API keys over HTTP, in-process: roles x endpoint groups, scopes, revocation, auto mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"
X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


async def started(settings: Settings) -> HttpApp:
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    if app.guard is not None:
        app.guard.refresh()
    return app


@pytest.fixture
async def app(repo: Path, tmp_path: Path) -> AsyncIterator[HttpApp]:
    application = await started(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    yield application
    await application.dataplane.stop()


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def new_key(client: httpx.AsyncClient, role: str, models: list[str] | None = None) -> str:
    r = await client.post("/v1/keys", json={"role": role, "models": models}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


# One request per endpoint group: (group, method, path, body).
ENDPOINTS = [
    ("open", "GET", "/v2/health/live", None),
    ("open", "GET", "/v2/health/ready", None),
    ("read", "GET", "/v2", None),
    ("read", "GET", "/v2/models/linear", None),
    ("read", "GET", "/v2/models/linear/ready", None),
    ("read", "GET", "/v2/models/linear/config", None),
    ("infer", "POST", "/v2/models/linear/infer", X),
    ("infer", "POST", "/v2/models/linear/explain", X),
    ("infer", "POST", "/predict", {"model_name": "linear", "input_data": {"x": [1.0]}}),
    ("metrics", "GET", "/metrics", None),
    ("repository", "POST", "/v2/repository/index", None),
    ("repository", "POST", "/v2/repository/models/linear/load", None),
    ("manage", "GET", "/v1/models", None),
    ("manage", "GET", "/v1/models/linear", None),
    ("manage", "GET", "/v1/audit", None),
    ("admin", "GET", "/v1/keys", None),
]
ALLOWED = {
    None: {"open"},
    "predict": {"open", "read", "infer"},
    "operator": {"open", "read", "infer", "metrics", "repository", "manage"},
    "admin": {"open", "read", "infer", "metrics", "repository", "manage", "admin"},
}


async def test_role_by_endpoint_group_matrix(client: httpx.AsyncClient) -> None:
    keys = {role: await new_key(client, role) for role in ("predict", "operator", "admin")}
    keys_or_none: dict[str | None, str | None] = {None: None, **keys}
    for role, key in keys_or_none.items():
        for group, method, path, body in ENDPOINTS:
            headers = bearer(key) if key else {}
            r = await client.request(method, path, json=body, headers=headers)
            if group in ALLOWED[role]:
                assert r.status_code == 200, (role, path, r.text)
            else:
                assert r.status_code == (401 if key is None else 403), (role, path, r.text)
                assert "error" in r.json()


async def test_missing_and_wrong_keys_get_401_with_a_challenge(client: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("nope"), {"x-api-key": "inferd_0000_bad"}, {"authorization": "x"}):
        r = await client.post("/v2/models/linear/infer", json=X, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
    # Unknown paths do not reveal themselves to callers without a key either.
    assert (await client.get("/v2/nothing/here")).status_code == 401


async def test_x_api_key_header_works(client: httpx.AsyncClient) -> None:
    key = await new_key(client, "predict")
    r = await client.post("/v2/models/linear/infer", json=X, headers={"x-api-key": key})
    assert r.status_code == 200, r.text


async def test_scope_hides_whether_a_model_exists(client: httpx.AsyncClient) -> None:
    key = await new_key(client, "predict", ["mlp"])
    for model in ("linear", "no-such-model"):
        r = await client.post(f"/v2/models/{model}/infer", json=X, headers=bearer(key))
        meta = await client.get(f"/v2/models/{model}", headers=bearer(key))
        assert (r.status_code, meta.status_code) == (403, 403)
        assert r.json()["error"].endswith(f"may not use model '{model}'")
        body = {"model_name": model, "input_data": {"x": [1.0]}}
        assert (await client.post("/predict", json=body, headers=bearer(key))).status_code == 403
    # Endpoints spanning every model are refused to a scoped key.
    assert (await client.get("/v2/models/stats", headers=bearer(key))).status_code == 403
    assert (await client.get("/v2/models/mlp", headers=bearer(key))).status_code == 200


async def test_revocation_is_effective_at_once(client: httpx.AsyncClient) -> None:
    key = await new_key(client, "predict")
    assert (await client.post("/v2/models/linear/infer", json=X, headers=bearer(key))).is_success
    listed = (await client.get("/v1/keys", headers=bearer(ADMIN))).json()
    key_id = next(k["id"] for k in listed if key.startswith(f"inferd_{k['id']}_"))
    assert "key" not in listed[0]
    assert "key_hash" not in listed[0]
    r = await client.delete(f"/v1/keys/{key_id}", headers=bearer(ADMIN))
    assert r.status_code == 200
    assert r.json()["revoked_at"]
    r = await client.post("/v2/models/linear/infer", json=X, headers=bearer(key))
    assert r.status_code == 401
    revoked = (await client.get("/v1/keys?revoked=true", headers=bearer(ADMIN))).json()
    assert any(k["id"] == key_id and k["revoked_at"] for k in revoked)
    assert (await client.delete("/v1/keys/nope", headers=bearer(ADMIN))).status_code == 404


async def test_revocation_elsewhere_reaches_this_replica_at_the_next_poll(
    app: HttpApp, client: httpx.AsyncClient
) -> None:
    from inferd.security.keys import KeyStore

    key = await new_key(client, "predict")
    assert app.guard is not None
    assert app.guard.store is not None
    other = KeyStore(app.guard.store.registry)  # as another replica or the CLI would
    other.revoke(key.split("_")[1])
    assert (await client.post("/v2/models/linear/infer", json=X, headers=bearer(key))).is_success
    app.guard.refresh()  # what the poll loop does when the revision moved
    r = await client.post("/v2/models/linear/infer", json=X, headers=bearer(key))
    assert r.status_code == 401


async def test_management_actor_is_the_key(client: httpx.AsyncClient) -> None:
    key = await new_key(client, "operator")
    headers = {**bearer(key), "x-inferd-actor": "mallory"}
    assert (await client.post("/v1/models/linear/versions/1/promote", headers=headers)).is_success
    entry = (await client.get("/v1/models/linear/audit", headers=bearer(ADMIN))).json()[0]
    assert entry["actor"] == f"mallory (key {key.split('_')[1]})"


async def test_bad_key_requests_get_400(client: httpx.AsyncClient) -> None:
    bodies = ({"role": "root"}, {"role": 3}, {"role": "predict", "models": 7}, [1],
              {"role": "predict", "name": {}})  # fmt: skip
    for body in bodies:
        r = await client.post("/v1/keys", json=body, headers=bearer(ADMIN))
        assert r.status_code == 400, r.text
    r = await client.get("/v1/keys?revoked=null", headers=bearer(ADMIN))
    assert r.status_code == 400
    assert "revoked" in r.json()["error"]
    r = await client.request("TRACE", "/v1/keys", headers=bearer(ADMIN))
    assert (r.status_code, r.headers["allow"]) == (405, "GET, POST")


async def test_metrics_open_when_metrics_auth_is_off(repo: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN, metrics_auth=False)
    app = await started(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/metrics")).status_code == 200
        assert (await c.get("/v2/models/linear")).status_code == 401
    await app.dataplane.stop()


async def test_auto_mode_is_off_without_keys_and_on_with_them(repo: Path, tmp_path: Path) -> None:
    from inferd.registry import Registry
    from inferd.security.keys import KeyStore, Role

    settings = Settings(home=tmp_path, model_repository=repo, host="127.0.0.1")
    app = build_app(settings)
    assert app.guard is None
    registry = Registry(settings.resolved_registry_url)
    KeyStore(registry).create(Role.PREDICT)
    registry.close()
    assert build_app(settings).guard is not None
    assert build_app(settings.model_copy(update={"auth": "off"})).guard is None
    fresh = Settings(home=tmp_path / "other", model_repository=repo, auth="on")
    assert build_app(fresh).guard is not None


async def test_auto_mode_is_on_for_a_non_loopback_host(repo: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, model_repository=repo, host="0.0.0.0")
    assert build_app(settings).guard is not None
    assert Settings(home=tmp_path).host == "127.0.0.1"  # the quick start stays open
    assert build_app(settings.model_copy(update={"auth": "off"})).guard is None
