"""Overload control behind the real data plane, HTTP app and gRPC server, in-process: a
saturated model sheds with 503 (UNAVAILABLE) and Retry-After, and interactive requests go
before batch ones."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from fixtures.models import write_python_model, xy_yaml

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.api.http import HttpApp
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.settings import Settings

# A model whose every call takes 50 ms (one request per call): requests sent together are
# all at the gate before the first answer comes back.
SLOW_PY = """\
import time

from inferd.runtimes.python import PythonModel


class Slow(PythonModel):
    def infer(self, inputs):
        time.sleep(0.05)
        return {"y": inputs["x"] * 2 + 1}
"""
MODELS = {
    # The limit pinned at 2, and no waiting beyond it.
    "shed": "{enabled: true, min_limit: 2, max_limit: 2, max_wait_ms: 0}",
    # The limit pinned at 2, batch may hold 1 of it; everyone may wait.
    "ordered": "{enabled: true, min_limit: 2, max_limit: 2, batch_share: 0.5, max_wait_ms: 60000}",
}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[HttpApp]:
    repo = tmp_path / "repo"
    for name, overload in MODELS.items():
        write_python_model(repo, name, SLOW_PY, xy_yaml("python", 1, f"overload: {overload}"))
    application = build_app(Settings(home=tmp_path, model_repository=repo, poll_interval_s=0.2))
    assert await application.dataplane.start() == {}
    try:
        yield application
    finally:
        await application.dataplane.stop()


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def body(traffic_class: str | None = None) -> dict[str, object]:
    params = {} if traffic_class is None else {"traffic_class": traffic_class}
    x = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
    return {"inputs": [x], "parameters": params}


async def test_a_saturated_model_sheds_with_503_and_retry_after(
    client: httpx.AsyncClient,
) -> None:
    sent = [client.post("/v2/models/shed/infer", json=body()) for _ in range(6)]
    answers = await asyncio.gather(*sent)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 503, 503, 503, 503], [r.text for r in answers]
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            error = r.json()["error"]
            assert "model 'shed' version 1 is overloaded: 2 of 2 requests in flight" in error
    text = (await client.get("/metrics")).text
    assert 'inferd_overload_shed_total{model="shed",traffic_class="interactive"} 4.0' in text
    assert 'inferd_concurrency_limit{model="shed",version="1"} 2.0' in text


async def test_over_grpc_the_shed_requests_get_unavailable_with_retry_after(app: HttpApp) -> None:
    server = inference_server(app.dataplane, "127.0.0.1", 0, transport="native")
    port = await server.start()
    request = pb.ModelInferRequest(model_name="shed")
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.raw_input_contents.append(np.ones(1, dtype="<f4").tobytes())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            infer = channel.unary_unary(
                f"/{SERVICE}/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            calls = [infer(request, timeout=10) for _ in range(6)]
            answers = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await server.stop(1.0)
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert len(refused) == 4, answers
    for err in refused:
        assert err.code() is grpc.StatusCode.UNAVAILABLE
        assert "model 'shed' version 1 is overloaded" in (err.details() or "")
        assert ("retry-after", "1") in tuple(err.trailing_metadata() or ())


async def test_interactive_requests_go_before_batch_requests(client: httpx.AsyncClient) -> None:
    done: list[tuple[float, str]] = []

    async def send(traffic_class: str) -> None:
        r = await client.post("/v2/models/ordered/infer", json=body(traffic_class))
        assert r.status_code == 200, r.text
        done.append((time.perf_counter(), traffic_class))

    await asyncio.gather(*(send(c) for c in ["batch"] * 4 + ["interactive"] * 4))
    order = [c for _, c in sorted(done)]
    # One batch request runs at a time; every interactive one that waited went before the
    # three batch requests that waited (the first batch one entered before them).
    assert order[-3:] == ["batch"] * 3, order
    assert order.count("interactive") == 4


def test_the_server_default_comes_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from inferd.cli.main import _parser

    assert _parser().parse_args(["serve", "--overload-control"]).overload_control is True
    assert _parser().parse_args(["serve"]).overload_control is None  # the settings decide
    assert build_app(Settings(home=tmp_path)).dataplane.admission.default is False
    monkeypatch.setenv("INFERD_OVERLOAD_CONTROL", "true")
    assert build_app(Settings(home=tmp_path)).dataplane.admission.default is True
