"""The gRPC server in-process on port 0 over a real data plane, on both gRPC cores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.api.http import HttpApp
from inferd.errors import ConfigError
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.settings import Settings
from inferd.transport.grpc.server import GrpcServer


class Stub:
    """Calls the service's methods by name with inferd's own messages."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    async def __call__(self, method: str, request: Any, deadline: float | None = None) -> Any:
        response_type = getattr(pb, type(request).__name__.replace("Request", "Response"))
        call = self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return await call(request, timeout=deadline)

    def stream(self) -> Any:
        return self.channel.stream_stream(
            f"/{SERVICE}/ModelStreamInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )()


@dataclass
class Served:
    app: HttpApp
    server: GrpcServer
    stub: Stub
    channel: grpc.aio.Channel
    http: httpx.AsyncClient


@pytest.fixture(params=["grpcio", "native"])
async def served(
    request: pytest.FixtureRequest, repo: Path, tmp_path: Path
) -> AsyncIterator[Served]:
    settings = Settings(home=tmp_path, model_repository=repo, grpc_max_message_bytes=64 * 1024)
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    server = inference_server(
        app.dataplane, "127.0.0.1", 0, max_message_bytes=64 * 1024, transport=request.param
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield Served(app, server, Stub(channel), channel, http)
    await channel.close()
    await server.stop(1.0)
    await app.dataplane.stop()


def linear_request(values: list[float], version: str = "1", **kw: Any) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="linear", model_version=version, **kw)
    msg.inputs.add(name="x", datatype="FP32", shape=[len(values)])
    msg.raw_input_contents.append(np.asarray(values, dtype="<f4").tobytes())
    return msg


def mlp_request() -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="mlp")
    msg.inputs.add(name="x", datatype="FP32", shape=[1, 256])
    msg.raw_input_contents.append(np.zeros(256, dtype="<f4").tobytes())
    return msg


def output(response: pb.ModelInferResponse, index: int = 0) -> np.ndarray:
    tensor = response.outputs[index]
    raw = response.raw_output_contents[index]
    return np.frombuffer(raw, dtype="<f4").reshape(tuple(tensor.shape))


async def test_health_metadata_and_readiness(served: Served) -> None:
    stub = served.stub
    assert (await stub("ServerLive", pb.ServerLiveRequest())).live
    assert (await stub("ServerReady", pb.ServerReadyRequest())).ready
    meta = await stub("ServerMetadata", pb.ServerMetadataRequest())
    assert meta.name == "inferd"
    assert "binary_tensor_data" in meta.extensions
    ready = await stub("ModelReady", pb.ModelReadyRequest(name="linear", version="2"))
    assert ready.ready
    assert not (await stub("ModelReady", pb.ModelReadyRequest(name="nope"))).ready
    model = await stub("ModelMetadata", pb.ModelMetadataRequest(name="mlp"))
    assert model.platform == "onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("x", "FP32", [-1, 256])]


async def test_infer_raw_and_typed_contents(served: Served) -> None:
    response = await served.stub("ModelInfer", linear_request([1, 2, 3], id="r1"))
    assert (response.model_name, response.model_version, response.id) == ("linear", "1", "r1")
    assert response.outputs[0].datatype == "FP32"
    np.testing.assert_array_equal(output(response), [3, 5, 7])
    typed = pb.ModelInferRequest(model_name="linear")
    typed.inputs.add(name="x", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1, 2])
    response = await served.stub("ModelInfer", typed)
    assert response.model_version == "2"  # the highest ready version: y = 3x + 1
    np.testing.assert_array_equal(output(response), [4, 7])


async def test_errors_map_to_status_codes_with_http_messages(served: Served) -> None:
    cases = [
        (linear_request([1], version="9"), grpc.StatusCode.NOT_FOUND, "version '9'"),
        (pb.ModelInferRequest(model_name="nope"), grpc.StatusCode.INVALID_ARGUMENT, "inputs"),
    ]
    wrong_type = pb.ModelInferRequest(model_name="linear", model_version="1")
    wrong_type.inputs.add(name="x", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    cases.append((wrong_type, grpc.StatusCode.INVALID_ARGUMENT, "input 'x'.datatype"))
    for request, code, text in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await served.stub("ModelInfer", request)
        assert info.value.code() == code
        assert text in (info.value.details() or "")
    # The same message as over HTTP.
    r = await served.http.post(
        "/v2/models/linear/versions/1/infer",
        json={"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]},
    )
    assert r.json()["error"] == info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub("ModelMetadata", pb.ModelMetadataRequest(name="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_message_size_limit(served: Served) -> None:
    big = linear_request([0.0] * 20_000)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub("ModelInfer", big)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_deadline_is_honoured(served: Served, repo: Path) -> None:
    # Hold the request in the queue for company far longer than its deadline.
    config = repo / "linear" / "model.yaml"
    config.write_text(
        config.read_text().replace("max_queue_delay_ms: 0", "max_queue_delay_ms: 5000")
    )
    await served.stub("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="linear"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub("ModelInfer", linear_request([1]), deadline=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    request = linear_request([1])
    request.parameters["timeout"].int64_param = 200_000  # Triton's µs parameter
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub("ModelInfer", request, deadline=10)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timed out in the queue" in (info.value.details() or "")


async def test_config_statistics_and_repository(served: Served) -> None:
    stub = served.stub
    await stub("ModelInfer", linear_request([1, 2]))
    config = (await stub("ModelConfig", pb.ModelConfigRequest(name="mlp"))).config
    http_config = (await served.http.get("/v2/models/mlp/config")).json()
    assert config.max_batch_size == http_config["max_batch_size"] == 64
    assert list(config.input[0].dims) == [256]
    assert config.input[0].data_type == 11  # TYPE_FP32
    stats = await stub("ModelStatistics", pb.ModelStatisticsRequest(name="linear", version="1"))
    assert stats.model_stats[0].inference_stats.success.count == 1
    index = await stub("RepositoryIndex", pb.RepositoryIndexRequest(ready=True))
    assert {(m.name, m.version) for m in index.models} >= {("linear", "1"), ("mlp", "1")}
    await stub("RepositoryModelUnload", pb.RepositoryModelUnloadRequest(model_name="mlp"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub("ModelInfer", mlp_request())
    assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
    await stub("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="mlp"))
    assert (await stub("ModelReady", pb.ModelReadyRequest(name="mlp"))).ready
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stream_answers_every_request_and_reports_errors_inline(served: Served) -> None:
    call = served.stub.stream()
    for i in range(5):
        await call.write(linear_request([float(i)], id=f"ok{i}"))
    await call.write(linear_request([1.0], version="9", id="bad"))
    await call.done_writing()
    answers = {}
    async for response in call:
        answers[response.infer_response.id] = response
    assert set(answers) == {"ok0", "ok1", "ok2", "ok3", "ok4", "bad"}
    assert "version '9'" in answers["bad"].error_message
    for i in range(5):
        assert answers[f"ok{i}"].error_message == ""
        np.testing.assert_array_equal(output(answers[f"ok{i}"].infer_response), [2 * i + 1])


async def test_grpc_and_http_requests_share_a_batch(served: Served, repo: Path) -> None:
    config = repo / "linear" / "model.yaml"
    config.write_text(
        config.read_text().replace("max_queue_delay_ms: 0", "max_queue_delay_ms: 300")
    )
    await served.stub("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="linear"))
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [5]}]}
    grpc_answer, http_answer = await asyncio.gather(
        served.stub("ModelInfer", linear_request([4])),
        served.http.post("/v2/models/linear/versions/1/infer", json=body),
    )
    np.testing.assert_array_equal(output(grpc_answer), [9])
    assert http_answer.json()["outputs"][0]["data"] == [11]
    stats = (await served.http.get("/v2/models/linear/versions/1/stats")).json()["model_stats"][0]
    assert stats["execution_count"] == 1  # one runtime call for both
    assert stats["inference_count"] == 2
    metrics = (await served.http.get("/metrics")).text
    assert 'protocol="grpc"' in metrics


async def test_health_checking_and_reflection(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    reflect = reflection_pb2_grpc.ServerReflectionStub(served.channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)

    replies = [r async for r in reflect.ServerReflectionInfo(ask())]
    names = {s.name for s in replies[0].list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names
    assert replies[1].file_descriptor_response.file_descriptor_proto


async def test_unimplemented_methods(served: Served) -> None:
    call = served.channel.unary_unary(
        f"/{SERVICE}/SystemSharedMemoryStatus",
        request_serializer=pb.SystemSharedMemoryStatusRequest.SerializeToString,
        response_deserializer=pb.SystemSharedMemoryStatusResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(pb.SystemSharedMemoryStatusRequest())
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_port_in_use_fails_the_start(served: Served) -> None:
    other = inference_server(
        served.app.dataplane, "127.0.0.1", served.server.port, transport=served.server.transport
    )
    with pytest.raises(ConfigError) as info:
        await other.start()
    assert info.value.field == "grpc_port"
    assert "--grpc-port" in info.value.message
    await other.stop(0)
