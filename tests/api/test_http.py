"""The ASGI app in-process through httpx's ASGI transport."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from inferd.api.app import build_app
from inferd.settings import Settings


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(home=tmp_path, model_repository=repo, max_body_bytes=64 * 1024)
    app = build_app(settings)
    problems = await app.dataplane.start()
    assert problems == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await app.dataplane.stop()


def v2_body(values: list[float], **extra: object) -> dict[str, object]:
    return {
        "inputs": [{"name": "x", "shape": [len(values)], "datatype": "FP32", "data": values}],
        **extra,
    }


async def test_health_and_server_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).status_code == 200
    meta = (await client.get("/v2")).json()
    assert meta["name"] == "inferd"
    assert "binary_tensor_data" in meta["extensions"]


async def test_v2_json_infer(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/models/linear/versions/1/infer", json=v2_body([1, 2, 3], id="a1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "linear"
    assert body["model_version"] == "1"
    assert body["id"] == "a1"
    assert body["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [3], "data": [3, 5, 7]}]
    assert r.headers["x-model-version"] == "1"


async def test_v2_binary_infer_both_ways(client: httpx.AsyncClient) -> None:
    x = np.arange(2 * 256, dtype=np.float32).reshape(2, 256) / 512
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 256],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    r = await client.post(
        "/v2/models/mlp/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    meta = orjson.loads(r.content[:length])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 2 * 10 * 4
    y = np.frombuffer(r.content[length:], dtype=np.float32).reshape(2, 10)
    assert np.isfinite(y).all()


async def test_predict(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/predict", json={"model_name": "linear", "model_version": "1", "input_data": {"x": [1, 2]}}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == {"y": [3, 5]}
    assert body["model_version"] == "1"
    assert set(body["batch_info"]) == {"batch_size", "wait_time_ms", "position_in_batch"}
    assert body["request_id"]
    assert body["latency_ms"] >= 0


@pytest.mark.parametrize(
    ("path", "payload", "status", "fragment"),
    [
        ("/v2/models/nope/infer", v2_body([1]), 404, "model 'nope' not found"),
        ("/v2/models/linear/versions/9/infer", v2_body([1]), 404, "version '9'"),
        (
            "/v2/models/linear/infer",
            {"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]},
            400,
            "unknown input 'z'",
        ),
        (
            "/v2/models/linear/infer",
            {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]},
            400,
            "expected FP32, got INT32",
        ),
        (
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "input 'x'.shape[1]",
        ),
        (
            "/v2/models/linear/infer",
            {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "'x'",
        ),
        (
            "/v2/models/linear/infer",
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["NaN"]}]},
            400,
            "'x'",
        ),
        ("/predict", {"model_name": "linear", "input_data": {"x": [[1], [2, 3]]}}, 400, "x"),
        ("/predict", {"input_data": {"x": [1]}}, 400, "model_name"),
    ],
)
async def test_bad_requests_get_clear_errors(
    client: httpx.AsyncClient, path: str, payload: object, status: int, fragment: str
) -> None:
    r = await client.post(path, json=payload)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]


async def test_nan_rejected_where_model_says_no(client: httpx.AsyncClient) -> None:
    body = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN]}]}'
    r = await client.post("/v2/models/linear/infer", content=body)
    assert r.status_code == 400
    r = await client.post("/predict", json={"model_name": "linear", "input_data": {"x": [1e39]}})
    assert r.status_code == 400, r.text
    assert "out of that range" in r.json()["error"]


async def test_malformed_json_and_binary_sizes(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/models/linear/infer", content=b'{"inputs": [')
    assert r.status_code == 400
    assert "body" in r.json()["error"]
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [2], "datatype": "FP32",
                 "parameters": {"binary_data_size": 8}},
            ]
        }
    )  # fmt: skip
    r = await client.post(
        "/v2/models/linear/infer",
        content=header + b"\0" * 4,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400
    assert "'x'" in r.json()["error"]
    r = await client.post(
        "/v2/models/linear/infer",
        content=header,
        headers={"Inference-Header-Content-Length": "abc"},
    )
    assert r.status_code == 400


async def test_body_too_large(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/models/linear/infer", json=v2_body([1.0] * 20_000))
    assert r.status_code == 413
    assert "65536" in r.json()["error"]


async def test_model_endpoints(client: httpx.AsyncClient) -> None:
    meta = (await client.get("/v2/models/linear")).json()
    assert meta["versions"] == ["1", "2"]
    assert (await client.get("/v2/models/linear/versions/1/ready")).status_code == 200
    assert (await client.get("/v2/models/linear/versions/3/ready")).status_code == 404
    config = (await client.get("/v2/models/mlp/config")).json()
    assert config["platform"] == "onnxruntime_onnx"
    await client.post("/v2/models/linear/versions/1/infer", json=v2_body([1]))
    stats = (await client.get("/v2/models/linear/versions/1/stats")).json()
    assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 1
    everything = (await client.get("/v2/models/stats")).json()
    assert len(everything["model_stats"]) == 3


async def test_repository_extension(client: httpx.AsyncClient) -> None:
    index = (await client.post("/v2/repository/index")).json()
    assert {"name": "mlp", "version": "1", "state": "READY"} in index
    assert (await client.post("/v2/repository/models/mlp/unload")).status_code == 200
    assert (await client.get("/v2/models/mlp/ready")).status_code == 404
    assert (await client.post("/v2/repository/models/mlp/load")).status_code == 200
    assert (await client.get("/v2/models/mlp/ready")).status_code == 200
    r = await client.post("/v2/repository/models/ghost/load")
    assert r.status_code == 404


async def test_unknown_paths_and_methods(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere")).status_code == 404
    r = await client.get("/v2/models/linear/infer")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


async def test_metrics_count_exactly(client: httpx.AsyncClient) -> None:
    for _ in range(7):
        await client.post("/v2/models/linear/versions/1/infer", json=v2_body([1]))
    await client.post("/v2/models/linear/versions/1/infer", json={"inputs": []})
    text = (await client.get("/metrics")).text
    line = 'inferd_requests_total{code="200",model="linear",protocol="http",version="1"} 7.0'
    assert line in text
    assert 'inferd_batch_size_count{model="linear",version="1"}' in text
