"""HTTP requests through the app are freed by reference counting: they leave no cycles.

The serving process runs young collections rarely (inferd.serving.collector), so a request
caught in a reference cycle would keep its body and answer until one runs (the native gRPC
core had such a cycle: tests/transport/grpc/test_call_cycles.py). Each kind of request here,
answered or refused, must leave nothing of inferd's for the collector.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fixtures.cycles import cycles

from inferd.api.app import build_app
from inferd.settings import Settings

V2 = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}
EXPERIMENT = {
    "name": "cycles", "model": "linear", "exposure_sample_rate": 1.0,
    "variants": [{"name": "a", "version": 1, "weight": 0.5},
                 {"name": "b", "version": 2, "weight": 0.5}],
}  # fmt: skip


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path, model_repository=repo, max_body_bytes=64 * 1024))
    assert await app.dataplane.start() == {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as c:  # fmt: skip
        yield c
    await app.dataplane.stop()


async def expect(response: Awaitable[httpx.Response], status: int) -> None:
    r = await response
    assert r.status_code == status, r.text


def binary(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
    raw = np.array([1.0, 2.0], dtype="<f4").tobytes()
    header = (
        b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":8}}],"outputs":[{"name":"y",'
        b'"parameters":{"binary_data":true}}]}'
    )
    return client.post(
        "/v2/models/linear/infer", content=header + raw,
        headers={"inference-header-content-length": str(len(header))},
    )  # fmt: skip


REQUESTS: dict[str, Callable[[httpx.AsyncClient], Awaitable[None]]] = {
    "v2 json": lambda c: expect(c.post("/v2/models/linear/infer", json=V2), 200),
    "v2 binary": lambda c: expect(binary(c), 200),
    "predict": lambda c: expect(
        c.post("/predict", json={"model_name": "linear", "input_data": {"x": [1.0]}}), 200
    ),
    "wrong shape": lambda c: expect(
        c.post("/v2/models/linear/infer", json={"inputs": [{**V2["inputs"][0], "shape": [3]}]}),
        400,
    ),
    "unknown model": lambda c: expect(c.post("/v2/models/nope/infer", json=V2), 404),
    "bad json": lambda c: expect(c.post("/v2/models/linear/infer", content=b"{not json"), 400),
    "too large": lambda c: expect(
        c.post("/v2/models/linear/infer", content=b"x" * (128 * 1024)), 413
    ),
    "ready": lambda c: expect(c.get("/v2/health/ready"), 200),
    "metrics": lambda c: expect(c.get("/metrics"), 200),
}


@pytest.mark.parametrize("kind", list(REQUESTS))
async def test_requests_leave_no_cycles(client: httpx.AsyncClient, kind: str) -> None:
    await REQUESTS[kind](client)  # warmed up: first-use caches are not cycles per request
    with cycles("inferd") as found:
        for _ in range(5):
            await REQUESTS[kind](client)
        await asyncio.sleep(0.01)
    assert found == [], found


async def test_routed_requests_leave_no_cycles(client: httpx.AsyncClient) -> None:
    exp_id = (await client.post("/v1/experiments", json=EXPERIMENT)).json()["id"]
    await expect(client.post(f"/v1/experiments/{exp_id}/start"), 200)
    await expect(client.get(f"/v1/experiments/{exp_id}/results"), 200)  # reads the routing
    body = {**V2, "parameters": {"user_id": "u-1"}}
    r = await client.post("/v2/models/linear/infer", json=body)
    assert "inferd-experiment-variant" in r.headers, r.headers
    with cycles("inferd") as found:
        for i in range(5):
            body = {**V2, "parameters": {"user_id": f"u-{i}"}}
            await expect(client.post("/v2/models/linear/infer", json=body), 200)
    assert found == [], found
