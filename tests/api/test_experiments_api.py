"""/v1/experiments end to end in-process: routing through the data plane, outcomes, results."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings

# linear: version 1 answers 2x + 1, version 2 answers 3x + 1; x = 1 tells them apart.
VARIANT_OF_Y = {3.0: "control", 4.0: "treatment"}


def spec(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "linear v2",
        "model": "linear",
        "variants": [
            {"name": "control", "version": 1, "weight": 0.7},
            {"name": "treatment", "version": 2, "weight": 0.3},
        ],
        "min_sample_size": 10,
    }
    body.update(changes)
    return body


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


async def started(client: httpx.AsyncClient, **changes: Any) -> str:
    r = await client.post("/v1/experiments", json=spec(**changes))
    assert r.status_code == 201, r.text
    exp_id: str = r.json()["id"]
    r = await client.post(f"/v1/experiments/{exp_id}/start")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "running"
    return exp_id


async def predict(client: httpx.AsyncClient, user: str | None, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", None)
    body: dict[str, Any] = {"model_name": "linear", "input_data": {"x": [1.0]}, **extra}
    if user is not None:
        body["user_id"] = user
    r = await client.post("/predict", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r


async def test_seventy_thirty_through_the_data_plane_and_sticky_units(
    client: httpx.AsyncClient,
) -> None:
    await started(client)
    seen: dict[str, str] = {}
    for i in range(2_000):
        r = await predict(client, f"user-{i}")
        variant = r.headers["inferd-experiment-variant"]
        assert VARIANT_OF_Y[r.json()["predictions"]["y"][0]] == variant  # served by its version
        seen[f"user-{i}"] = variant
    share = Counter(seen.values())["control"] / len(seen)
    assert abs(share - 0.7) < 0.035  # 2,000 units: sd of the share is about 0.01
    for i in range(0, 2_000, 100):  # every unit's next 50 requests land on its variant
        for _ in range(50):
            r = await predict(client, f"user-{i}")
            assert r.headers["inferd-experiment-variant"] == seen[f"user-{i}"]


async def test_v2_parameters_carry_the_unit_and_the_variant(client: httpx.AsyncClient) -> None:
    exp_id = await started(client)
    body = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
        "parameters": {"user_id": "u-1"},
    }
    r = await client.post("/v2/models/linear/infer", json=body)
    assert r.status_code == 200, r.text
    params = r.json()["parameters"]
    assert params["experiment_id"] == exp_id
    assert params["experiment_variant"] == r.headers["inferd-experiment-variant"]
    assert "inferd-experiment-id" not in r.headers  # one header: the id is in the parameters
    explicit = await client.post("/v2/models/linear/versions/1/infer", json=body)
    assert "inferd-experiment-variant" not in explicit.headers  # a named version bypasses
    assert "parameters" not in explicit.json()


async def test_requests_without_a_unit_follow_the_fallback(client: httpx.AsyncClient) -> None:
    await started(client)
    for _ in range(20):
        r = await predict(client, None)
        assert r.headers["inferd-experiment-variant"] == "control"


async def test_header_unit_and_excluded_fallback(client: httpx.AsyncClient) -> None:
    await started(client, unit={"kind": "header", "key": "X-Visitor"}, fallback="exclude")
    r = await predict(client, None)
    assert "inferd-experiment-variant" not in r.headers  # excluded: the default version
    variants = set()
    for i in range(40):
        r = await predict(client, None, headers={"x-visitor": f"v{i}"})
        variants.add(r.headers["inferd-experiment-variant"])
    assert variants == {"control", "treatment"}


async def test_lifecycle_over_http_and_illegal_moves(client: httpx.AsyncClient) -> None:
    exp_id = await started(client)
    r = await client.post(f"/v1/experiments/{exp_id}/resume")
    assert r.status_code == 409
    assert "is running; it can become running only from paused" in r.json()["error"]
    assert (await client.post(f"/v1/experiments/{exp_id}/pause")).json()["state"] == "paused"
    r = await predict(client, "u-1")
    assert "inferd-experiment-variant" not in r.headers  # paused: nothing routed
    listed = (await client.get("/v1/experiments", params={"state": "paused"})).json()
    assert [e["id"] for e in listed] == [exp_id]
    r = await client.post(f"/v1/experiments/{exp_id}/conclude", json={"winner": "treatment"})
    assert r.status_code == 200, r.text
    assert r.json()["winner"] == "treatment"
    shown = (await client.get("/v1/models/linear")).json()
    assert shown["production_version"] == 2
    assert (await client.get("/v1/experiments/exp-nope")).status_code == 404
    r = await client.post(
        "/v1/experiments",
        json=spec(
            variants=[
                {"name": "a", "version": 1, "weight": 0.6},
                {"name": "b", "version": 2, "weight": 0.6},
            ]
        ),
    )
    assert r.status_code == 400
    assert "sum 1.2" in r.json()["error"]


async def test_outcomes_and_results(client: httpx.AsyncClient) -> None:
    exp_id = await started(client, primary_metric="conversion", exposure_sample_rate=1.0)
    outcomes = []
    for i in range(400):
        r = await predict(client, f"user-{i}", request_id=f"req-{i}")
        converted = r.headers["inferd-experiment-variant"] == "treatment" or i % 4 == 0
        if i % 2:
            outcomes.append({"unit_id": f"user-{i}", "kind": "conversion", "value": int(converted)})
        else:
            outcomes.append({"request_id": f"req-{i}", "kind": "conversion",
                             "value": int(converted)})  # fmt: skip
    r = await client.post(f"/v1/experiments/{exp_id}/outcomes", json={"outcomes": outcomes})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 400, "pending": 0}
    r = await client.post(f"/v1/experiments/{exp_id}/outcomes",
                          json={"unit_id": "u", "kind": "conversion", "value": 2})  # fmt: skip
    assert r.status_code == 400
    assert "body.value" in r.json()["error"]
    results = (await client.get(f"/v1/experiments/{exp_id}/results")).json()
    assert sum(v["requests"] for v in results["variants"]) == 400
    conversion = results["metrics"]["conversion"]
    assert conversion["primary"] is True
    rates = {v["name"]: v["mean"] for v in conversion["variants"]}
    assert rates["treatment"] == 1.0
    assert 0.1 < rates["control"] < 0.4
    [comparison] = conversion["comparisons"]
    assert comparison["significant"] is True
    assert comparison["p_value"] < 1e-6
    assert comparison["ci"][0] > 0
    assert results["sample_size"]["reached"] is True
    assert results["srm"]["warning"] is False
    assert set(results["metrics"]) == {"conversion", "error_rate", "latency_ms"}


HOSTILE = [
    ("POST", "", b"[]"),
    ("POST", "", b"{"),
    ("POST", "", b'{"name": "e", "model": "linear", "variants": "ab"}'),
    ("POST", "", b'{"name": "e", "model": "linear", "variants": [{"name": "(x)", "version": 1}]}'),
    ("GET", "?state=bogus", b""),
    ("POST", "/{id}/weights", b'{"weights": "x"}'),
    ("POST", "/{id}/weights", b'{"weights": [true, false]}'),
    ("POST", "/{id}/weights", b'{"weights": [1e308, -1e308]}'),
    ("POST", "/{id}/conclude", b'{"winner": 5}'),
    ("POST", "/{id}/stop", b'{"reason": []}'),
    ("POST", "/{id}/outcomes", b""),
    ("POST", "/{id}/outcomes", b"7"),
    ("POST", "/{id}/outcomes", b'{"outcomes": {"a": 1}}'),
    ("POST", "/{id}/outcomes", b'[{"unit_id": {"a": 1}, "kind": "value", "value": 1}]'),
    (
        "POST",
        "/{id}/outcomes",
        b'{"unit_id": "u", "kind": "label", "label": "' + b"x" * 300 + b'"}',
    ),
    ("GET", "/{id}/outcomes", b""),
    ("DELETE", "/{id}", b""),
    ("POST", "/{id}/explode", b""),
]


async def test_hostile_requests_get_4xx_with_a_message(client: httpx.AsyncClient) -> None:
    exp_id = (await client.post("/v1/experiments", json=spec())).json()["id"]
    for method, path, body in HOSTILE:  # one app for all: starting one loads two models
        r = await client.request(method, "/v1/experiments" + path.format(id=exp_id), content=body)
        assert 400 <= r.status_code < 500, (method, path, body[:60], r.text)
        assert r.json()["error"]


async def test_each_results_look_carries_the_running_minimum_sequential_p_value(
    client: httpx.AsyncClient,
) -> None:
    exp_id = await started(client, primary_metric="conversion", guard_metrics=[])
    arms: dict[str, list[str]] = {"control": [], "treatment": []}
    for i in range(200):
        r = await predict(client, f"user-{i}")
        arms[r.headers["inferd-experiment-variant"]].append(f"user-{i}")

    async def post(variant: str, value: int, repeat: int) -> None:
        items = [{"unit_id": u, "kind": "conversion", "value": value} for u in arms[variant]]
        r = await client.post(f"/v1/experiments/{exp_id}/outcomes", json=items * repeat)
        assert r.status_code == 200, r.text

    async def comparison() -> dict[str, Any]:
        r = await client.get(f"/v1/experiments/{exp_id}/results")
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()["metrics"]["conversion"]["comparisons"][0]
        return found

    await post("treatment", 1, 1)
    await post("control", 0, 1)
    first = await comparison()
    assert first["significant_sequential"] is True
    # Later outcomes reverse the gap's evidence: this look alone says less, the result does not.
    await post("treatment", 0, 3)
    await post("control", 1, 1)
    second = await comparison()
    assert second["p_value_sequential_look"] > first["p_value_sequential_look"]
    assert second["p_value_sequential"] == first["p_value_sequential"]
