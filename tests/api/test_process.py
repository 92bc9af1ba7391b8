"""Smoke tests against real `inferd serve` processes on free ports."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fixtures.servers import START_TIMEOUT_S, Server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path) as srv:
        yield srv


def test_tritonclient_http_with_default_settings(server: Server) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("linear")
        x = triton.InferInput("x", [3], "FP32")
        x.set_data_from_numpy(np.array([1, 2, 3], dtype=np.float32))
        result = client.infer("linear", [x], model_version="1")
        np.testing.assert_array_equal(result.as_numpy("y"), [3, 5, 7])
        metadata = client.get_model_metadata("mlp")
        assert metadata["inputs"][0]["shape"] == [-1, 256]
        assert client.get_model_config("mlp")["max_batch_size"] == 64
        stats = client.get_inference_statistics("linear", "1")
        assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 1
    finally:
        client.close()


def test_curl_style_json_and_predict(server: Server) -> None:
    body = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}
    r = httpx.post(f"{server.url}/v2/models/linear/versions/1/infer", json=body)
    assert r.json()["outputs"][0]["data"] == [3, 5, 7]
    r = httpx.post(
        f"{server.url}/predict",
        json={"model_name": "linear", "model_version": 1, "input_data": {"x": [1, 2, 3]}},
    )
    assert r.json()["predictions"] == {"y": [3, 5, 7]}


def test_sigterm_finishes_queued_requests(repo: Path, tmp_path: Path) -> None:
    # Requests wait 1 s in the queue for company, so they are surely queued at SIGTERM.
    config = repo / "linear" / "model.yaml"
    text = config.read_text().replace("max_queue_delay_ms: 0", "max_queue_delay_ms: 3000")
    config.write_text(text)
    srv = Server(repo, tmp_path)
    try:
        srv.wait_ready()
        url = f"{srv.url}/v2/models/linear/versions/1/infer"
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [2]}]}
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(httpx.post, url, json=body, timeout=30) for _ in range(16)]
            meta = f"{srv.url}/v2/models/linear/versions/1"
            deadline = time.monotonic() + 10
            while httpx.get(meta).json()["parameters"]["queue_depth"] < 16:
                assert time.monotonic() < deadline, "requests never reached the queue"
                time.sleep(0.01)
            srv.proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 16
        assert all(a.json()["outputs"][0]["data"] == [5] for a in answers)
        # uvicorn re-raises the signal after its graceful shutdown, as a process should.
        assert srv.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in srv.output()
    finally:
        srv.stop()


def test_two_workers_merge_exact_metrics(repo: Path, tmp_path: Path) -> None:
    srv = Server(repo, tmp_path, workers=2)
    try:
        srv.wait_ready()
        # Both workers must be ready: readiness is per process, so poll until the load is done.
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
        url = f"{srv.url}/v2/models/linear/versions/1/infer"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            # A new connection per check, so the checks reach both workers.
            if all(httpx.get(f"{srv.url}/v2/health/ready").status_code == 200 for _ in range(20)):
                break
            time.sleep(0.2)

        def send(_: int) -> int:
            with httpx.Client() as c:  # new connections spread over both workers
                return c.post(url, json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(send, range(200)))
        assert codes == [200] * 200
        text = httpx.get(f"{srv.url}/metrics").text
        line = 'inferd_requests_total{code="200",model="linear",protocol="http",version="1"}'
        values = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)]
        assert values == [200.0]
    finally:
        assert srv.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in srv.output()
