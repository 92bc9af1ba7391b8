"""Rate, concurrency and size limits; hostile input gets 4xx, never 5xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from inferd.api.app import build_app
from inferd.errors import RateLimited, RequestTooLarge
from inferd.security.limits import Concurrency, RateLimiter, RequestLimits
from inferd.settings import Settings
from inferd.types import InferenceRequest

ADMIN = "bootstrap-admin-key-0123456789"
X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_and_names_the_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, what="API key", clock=clock)
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimited) as info:
        limiter.take("k")
    assert info.value.headers() == {"retry-after": "1"}
    limiter.take("other")  # buckets are per name
    clock.now += 0.5  # one token back
    limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")


def test_concurrency_per_key() -> None:
    slots = Concurrency(2)
    slots.acquire("a")
    slots.acquire("a")
    with pytest.raises(RateLimited):
        slots.acquire("a")
    slots.acquire("b")
    slots.release("a")
    slots.acquire("a")
    assert slots.running("a") == 2


def test_request_limits() -> None:
    limits = RequestLimits(max_elements=100, max_rows=10, max_string_bytes=4)
    ok = InferenceRequest("m", None, {"x": np.zeros((10, 10), dtype=np.float32)})
    limits.check(ok)
    strings = np.array([b"abcd", b"abcde"], dtype=np.object_)
    for inputs in (
        {"x": np.zeros(101, dtype=np.float32)},
        {"x": np.zeros((11, 1), dtype=np.float32)},
        {"s": strings},
        {"s": np.array(["abcdefgh"])},
    ):
        with pytest.raises(RequestTooLarge):
            limits.check(InferenceRequest("m", None, inputs))


def test_request_limits_on_a_declaration_name_the_same_setting() -> None:
    limits = RequestLimits(max_elements=100, max_rows=10, max_string_bytes=4)
    limits.check_declared("x", [10, 10], 100)
    limits.check_declared("x", None, 100)  # /predict: only a count is known before parsing
    with pytest.raises(RequestTooLarge, match="input 'x' elements: expected at most 100, got 101"):
        limits.check_declared("x", None, 101)
    with pytest.raises(RequestTooLarge, match=r"input 'x' rows: .* INFERD_MAX_BATCH_ROWS"):
        limits.check_declared("x", [11, 1], 11)


async def test_http_rate_limit_answers_429_with_retry_after(repo: Path, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, model_repository=repo, admin_key=ADMIN, key_rate_limit=0.5,
        key_rate_burst=2, max_batch_rows=4,
    )  # fmt: skip
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    headers = {"x-api-key": ADMIN}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.post("/v2/models/linear/infer", json=X, headers=headers)).is_success
        big = {"inputs": [{"name": "x", "shape": [5], "datatype": "FP32", "data": [1] * 5}]}
        r = await c.post("/v2/models/linear/infer", json=big, headers=headers)
        assert r.status_code == 413
        assert "INFERD_MAX_BATCH_ROWS" in r.json()["error"]
        r = await c.post("/v2/models/linear/infer", json=X, headers=headers)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert (await c.get("/v2/health/live")).status_code == 200  # never limited
    await app.dataplane.stop()


HOSTILE = [
    b'{"inputs":' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":'
    + b"[" * 1000
    + b'"a"'
    + b"]" * 1000
    + b"}]}",
    orjson.dumps({"inputs": [{"name": "x", "shape": [0, 2**62], "datatype": "FP32", "data": []}]}),
    orjson.dumps({"inputs": [{"name": "x", "shape": [1] * 70, "datatype": "FP32", "data": [1]}]}),
    orjson.dumps({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}),
    b'{"inputs":[{"name":"x","shape":[100000000000000000000000],"datatype":"FP32","data":[]}]}',
]


async def test_hostile_bodies_get_400(repo: Path, tmp_path: Path) -> None:
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for body in HOSTILE:
            r = await c.post("/v2/models/linear/infer", content=body)
            assert r.status_code == 400, (body[:60], r.text)
        # Binary tensors whose sizes lie.
        header = orjson.dumps({"inputs": [{"name": "x", "shape": [2**40, 2**40], "datatype":
                               "FP32", "parameters": {"binary_data_size": 4}}]})  # fmt: skip
        lying = {"inference-header-content-length": str(len(header))}
        r = await c.post("/v2/models/linear/infer", content=header + b"\0" * 4, headers=lying)
        assert r.status_code == 400
        header = orjson.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES",
                               "parameters": {"binary_data_size": 8}}]})  # fmt: skip
        body = header + b"\xff\xff\xff\x7fabcd"  # claims a 2 GiB string in 8 bytes
        lying = {"inference-header-content-length": str(len(header))}
        r = await c.post("/v2/models/linear/infer", content=body, headers=lying)
        assert r.status_code == 400
    await app.dataplane.stop()
