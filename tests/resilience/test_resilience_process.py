"""End to end on real `inferd serve` processes: a cache shared through a real redis-server,
and the served_from markers of the cache and of a fallback chain."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
import tritonclient.grpc as grpcclient
from fixtures.models import write_python_model, xy_yaml
from fixtures.redis import redis_server
from fixtures.servers import Server

FLAKY_YAML = xy_yaml(
    "python", 8, "version_policy: all", "fallback: {versions: [1], default: {y: 0.5}}"
)
# Version 2 fails on negative inputs, version 1 (y = 2x + 1) below -100.
FLAKY_PY = """\
from inferd.runtimes.python import PythonModel


class Flaky(PythonModel):
    def infer(self, inputs):
        if (inputs["x"] < {limit}).any():
            raise ValueError("input out of range")
        return {{"y": inputs["x"] * 2 + 1}}
"""


@pytest.fixture
def served(repo: Path, tmp_path: Path) -> Iterator[tuple[Server, Server, str]]:
    config = repo / "linear" / "model.yaml"
    config.write_text(config.read_text() + "cache: {enabled: true}\n")
    for version, limit in ((1, -100), (2, 0)):
        write_python_model(repo, "flaky", FLAKY_PY.format(limit=limit), FLAKY_YAML, version)
    with redis_server(tmp_path / "redis") as url:
        extra = ["--cache-redis-url", url]
        homes = [tmp_path / "a", tmp_path / "b"]
        for home in homes:
            home.mkdir()
        servers = [Server(repo, home, extra=extra) for home in homes]
        try:
            for server in servers:
                server.wait_ready()
            yield servers[0], servers[1], url
        finally:  # not Server.__exit__: the failing model's batches log their tracebacks
            for server in servers:
                server.stop()


def infer(server: Server, model: str, x: float) -> httpx.Response:
    doc = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}]}
    r = httpx.post(f"{server.url}/v2/models/{model}/infer", json=doc, timeout=10)
    assert r.status_code == 200, r.text
    return r


def test_replicas_share_answers_through_redis_and_mark_them(
    served: tuple[Server, Server, str],
) -> None:
    a, b, url = served
    first = infer(a, "linear", 7.0)
    assert first.json()["outputs"][0]["data"] == [22.0]  # version 2: y = 3x + 1
    assert "inferd-served-from" not in first.headers
    shared = redis.Redis.from_url(url)
    deadline = time.monotonic() + 5  # the write is in the background of the answer
    while not shared.keys("inferd:cache:*"):
        assert time.monotonic() < deadline, "replica a never wrote its answer to Redis"
        time.sleep(0.02)
    shared.close()
    second = infer(b, "linear", 7.0)
    assert second.json()["outputs"][0]["data"] == [22.0]
    assert second.headers["inferd-served-from"] == "cache"
    assert second.json()["parameters"] == {"served_from": "cache"}
    metrics = httpx.get(f"{b.url}/metrics").text
    assert 'inferd_cache_hits_total{model="linear",tier="redis",version="2"} 1.0' in metrics
    third = infer(a, "linear", 7.0)
    assert third.headers["inferd-served-from"] == "cache"  # a's own in-process tier
    assert "Traceback" not in a.output() + b.output()


def test_fallback_chain_markers_metrics_and_log(served: tuple[Server, Server, str]) -> None:
    a, _, _ = served
    primary = infer(a, "flaky", 3.0)
    assert (primary.headers["x-model-version"], primary.json()["outputs"][0]["data"]) == (
        "2",
        [7.0],
    )
    assert "inferd-served-from" not in primary.headers
    hop = infer(a, "flaky", -1.0)  # version 2 raises; version 1 answers
    assert hop.headers["inferd-served-from"] == "fallback"
    assert hop.headers["x-model-version"] == "1"
    assert hop.json()["outputs"][0]["data"] == [-1.0]
    assert hop.json()["parameters"] == {"served_from": "fallback", "fallback_reason": "error"}
    default = infer(a, "flaky", -1000.0)  # both raise: the default answer
    assert default.headers["inferd-served-from"] == "fallback"
    assert default.json()["outputs"][0]["data"] == [0.5]
    assert default.json()["parameters"]["fallback_default"] is True
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{a.grpc_port}")
    x = grpcclient.InferInput("x", [1], "FP32")
    x.set_data_from_numpy(np.array([-2.0], np.float32))
    result = client.infer("flaky", [x])  # over gRPC: the marker is in the response parameters
    client.close()
    assert result.get_response().parameters["served_from"].string_param == "fallback"
    np.testing.assert_array_equal(result.as_numpy("y"), [-3.0])
    metrics = httpx.get(f"{a.url}/metrics").text
    assert 'inferd_fallback_total{model="flaky",reason="error"} 4.0' in metrics
    assert "fallback: model 'flaky' version 2 -> 1 (reason: error)" in a.output()
    assert "fallback: model 'flaky' version 1 -> default (reason: error)" in a.output()
