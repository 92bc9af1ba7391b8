"""API keys over gRPC: a real server on port 0 with the auth interceptor, on both cores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inferd.api.app import build_app
from inferd.api.auth import Security
from inferd.api.grpc import inference_server
from inferd.client import AsyncClient, ClientError
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.security.guard import Guard
from inferd.security.keys import KeyStore, Role
from inferd.settings import Settings
from inferd.transport.grpc.server import GrpcServer

ADMIN = "bootstrap-admin-key-0123456789"


@pytest.fixture(params=["grpcio", "native"])
async def served(
    request: pytest.FixtureRequest, repo: Path, tmp_path: Path
) -> AsyncIterator[tuple[GrpcServer, KeyStore, Guard]]:
    settings = Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN)
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    assert app.guard is not None
    assert app.guard.store is not None
    assert app.limits is not None
    security = Security(app.guard, app.limits, "on", app.guard.store)
    server = inference_server(
        app.dataplane, "127.0.0.1", 0, interceptors=security.interceptors(),
        transport=request.param,
    )  # fmt: skip
    await server.start()
    yield server, app.guard.store, app.guard
    await server.stop(0)
    await app.dataplane.stop()


async def call(port: int, method: str, request: Any, metadata: Any = None) -> Any:
    response_type = getattr(pb, type(request).__name__.replace("Request", "Response"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return await stub(request, metadata=metadata)


async def read_all(stream: Any) -> None:
    while await stream.read() is not grpc.aio.EOF:
        pass


def infer_request(model: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.raw_input_contents.append(np.ones(1, dtype=np.float32).tobytes())
    return request


async def test_grpc_keys_roles_and_scopes(served: tuple[GrpcServer, KeyStore, Guard]) -> None:
    server, store, guard = served
    predict, _ = store.create(Role.PREDICT, frozenset({"linear"}))
    guard.refresh()
    # Health stays open.
    assert (await call(server.port, "ServerLive", pb.ServerLiveRequest())).live
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status in (health_pb2.HealthCheckResponse.SERVING,
                                 health_pb2.HealthCheckResponse.NOT_SERVING)  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server.port, "ModelInfer", infer_request("linear"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ok = await call(server.port, "ModelInfer", infer_request("linear"), [("x-api-key", predict)])
    assert ok.model_name == "linear"
    metadata = [("authorization", f"Bearer {predict}")]
    for model in ("mlp", "nope"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(server.port, "ModelInfer", infer_request(model), metadata)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server.port, "RepositoryIndex", pb.RepositoryIndexRequest(), metadata)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    index = await call(server.port, "RepositoryIndex", pb.RepositoryIndexRequest(),
                       [("x-api-key", ADMIN)])  # fmt: skip
    assert {m.name for m in index.models} == {"linear", "mlp"}


async def test_sdk_sends_the_key(served: tuple[GrpcServer, KeyStore, Guard]) -> None:
    server, store, guard = served
    key, _ = store.create(Role.PREDICT)
    guard.refresh()
    x = {"x": np.ones(2, dtype=np.float32)}
    async with AsyncClient(f"grpc://127.0.0.1:{server.port}", api_key=key) as client:
        assert (await client.infer("linear", x))["y"].tolist() == [4.0, 4.0]
    async with AsyncClient(f"grpc://127.0.0.1:{server.port}", api_key="wrong") as client:
        with pytest.raises(ClientError) as info:
            await client.infer("linear", x)
        assert info.value.code == "UNAUTHENTICATED"


async def test_stream_refuses_models_out_of_scope(
    served: tuple[GrpcServer, KeyStore, Guard],
) -> None:
    server, store, guard = served
    key, _ = store.create(Role.PREDICT, frozenset({"linear"}))
    guard.refresh()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stream = channel.stream_stream(
            f"/{SERVICE}/ModelStreamInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )(metadata=[("x-api-key", key)])
        await stream.write(infer_request("linear"))
        first = await stream.read()
        assert first.infer_response.model_name == "linear"
        await stream.write(infer_request("mlp"))
        await stream.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await read_all(stream)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_grpc_accepts_jwt_bearer_tokens(
    served: tuple[GrpcServer, KeyStore, Guard], tmp_path: Path
) -> None:
    import time

    import jwt

    from inferd.security.jwt import JwtSettings, JwtVerifier

    server, _, guard = served
    secret = b"x" * 48
    (tmp_path / "hs").write_bytes(secret)
    guard.jwt = JwtVerifier(JwtSettings(key_file=tmp_path / "hs"))
    claims = {"sub": "svc", "role": "predict", "models": ["linear"], "exp": time.time() + 60}
    text = jwt.encode(claims, secret, algorithm="HS256")
    reply = await call(server.port, "ModelInfer", infer_request("linear"),
                       [("authorization", f"Bearer {text}")])  # fmt: skip
    assert reply.model_name == "linear"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server.port, "ModelInfer", infer_request("mlp"),
                   [("authorization", f"Bearer {text}")])  # fmt: skip
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "jwt:svc" in str(info.value.details())
