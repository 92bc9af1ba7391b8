"""GET /v1/alerts in-process: the documented shape, active and history, filters, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.schemas.alerts import AlertsOut
from inferd.errors import ConfigError
from inferd.monitoring.alerts_store import AlertStore
from inferd.registry import Registry
from inferd.settings import Settings

RULES = """
rules:
  - {name: HighP99Latency, kind: latency_p99, threshold: 500ms, for: 10s}
  - {name: Drift, kind: drift}
"""


def _alert(rule: str, state: str, at: float) -> dict[str, object]:
    return {"fingerprint": f"{rule}-{at}", "rule": rule, "kind": "drift", "severity": "warning",
            "state": state, "labels": {"model": "linear", "version": "1"}, "summary": "s",
            "value": None, "started_at": at, "fired_at": at if state != "pending" else None,
            "resolved_at": at + 5 if state == "resolved" else None}  # fmt: skip


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    settings = Settings(home=tmp_path, model_repository=repo, alerts_file=rules)
    app = build_app(settings)
    registry = Registry(settings.resolved_registry_url)  # migrated: the tables exist
    store = AlertStore(registry)
    store.open(_alert("Drift", "resolved", 1000.0), 1000.0)
    store.open(_alert("Drift", "firing", 2000.0), 2000.0)
    store.open(_alert("HighP99Latency", "pending", 3000.0), 3000.0)
    registry.close()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_active_and_history(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/alerts")
    assert r.status_code == 200, r.text
    body = AlertsOut.model_validate(r.json())
    assert body.evaluating
    assert [r.name for r in body.rules] == ["HighP99Latency", "Drift"]
    assert body.rules[0].threshold == 0.5
    assert [(a.rule, a.state) for a in body.active] == [("Drift", "firing"),
                                                       ("HighP99Latency", "pending")]  # fmt: skip
    assert [a.state for a in body.history] == ["firing", "resolved"]  # newest first, no pending
    assert body.history[1].resolved_at == "1970-01-01T00:16:45+00:00"


async def test_filters_and_errors(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/alerts?rule=HighP99Latency&limit=1")).json()
    assert [a["rule"] for a in body["active"]] == ["HighP99Latency"]
    assert body["history"] == []
    r = await client.get("/v1/alerts?limit=0")
    assert r.status_code == 400
    assert "limit" in r.json()["error"]
    assert (await client.post("/v1/alerts", json={})).status_code == 405
    assert (await client.get("/v1/alerts/1")).status_code == 404


def test_a_bad_alerts_file_stops_the_app(repo: Path, tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules: [{name: X, kind: error_rate}]\n")
    with pytest.raises(ConfigError, match=r"rules\[0\] \(X\)\.threshold"):
        build_app(Settings(home=tmp_path, model_repository=repo, alerts_file=rules))


async def test_roles(repo: Path, tmp_path: Path) -> None:
    admin = "bootstrap-admin-key-0123456789"
    app = build_app(Settings(home=tmp_path, model_repository=repo, admin_key=admin))
    assert await app.dataplane.start() == {}  # migrates the registry
    assert app.guard is not None
    app.guard.refresh()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

        async def key(models: list[str] | None) -> dict[str, str]:
            r = await c.post("/v1/keys", json={"role": "predict", "models": models},
                             headers={"authorization": f"Bearer {admin}"})  # fmt: skip
            assert r.status_code == 201, r.text
            return {"authorization": f"Bearer {r.json()['key']}"}

        assert (await c.get("/v1/alerts")).status_code == 401
        reader = await key(None)
        r = await c.get("/v1/alerts", headers=reader)
        assert r.status_code == 200, r.text
        assert r.json()["evaluating"] is False  # no alerts file
        scoped = await key(["linear"])
        assert (await c.get("/v1/alerts", headers=scoped)).status_code == 403  # spans all models
    await app.dataplane.stop()
