"""Experiments over gRPC: the unit from a request parameter or a metadata key, the variant
in the response parameters, on both gRPC cores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.settings import Settings


@pytest.fixture(params=["grpcio", "native"])
async def served(
    request: pytest.FixtureRequest, repo: Path, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    server = inference_server(app.dataplane, "127.0.0.1", 0, transport=request.param)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    infer = channel.unary_unary(
        f"/{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c, infer
    await channel.close()
    await server.stop(1.0)
    await app.dataplane.stop()


def message(**params: str) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="linear")
    tensor = msg.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.0)
    for key, value in params.items():
        msg.parameters[key].string_param = value
    return msg


async def start(client: httpx.AsyncClient, unit: dict[str, str]) -> str:
    body = {
        "name": "grpc", "model": "linear", "unit": unit,
        "variants": [{"name": "control", "version": 1, "weight": 0.5},
                     {"name": "treatment", "version": 2, "weight": 0.5}],
    }  # fmt: skip
    exp_id: str = (await client.post("/v1/experiments", json=body)).json()["id"]
    assert (await client.post(f"/v1/experiments/{exp_id}/start")).status_code == 200
    return exp_id


def variant(response: pb.ModelInferResponse) -> str:
    version = {"1": "control", "2": "treatment"}[response.model_version]
    assert response.parameters["experiment_variant"].string_param == version
    return version


async def test_user_id_parameter_routes_stickily(served: tuple[httpx.AsyncClient, Any]) -> None:
    client, infer = served
    exp_id = await start(client, {"kind": "user_id"})
    seen = {}
    for i in range(30):
        call = infer(message(user_id=f"u{i}"))
        response = await call
        assert response.parameters["experiment_id"].string_param == exp_id
        seen[i] = variant(response)
        # The trailing metadata names the variant, as the HTTP header does.
        assert ("inferd-experiment-variant", seen[i]) in tuple(await call.trailing_metadata())
    assert set(seen.values()) == {"control", "treatment"}
    for i in range(30):
        assert variant(await infer(message(user_id=f"u{i}"))) == seen[i]


async def test_metadata_key_routes(served: tuple[httpx.AsyncClient, Any]) -> None:
    client, infer = served
    await start(client, {"kind": "header", "key": "x-tenant"})
    found = set()
    for i in range(30):
        response = await infer(message(), metadata=(("x-tenant", f"t{i}"),))
        first = variant(response)
        again = await infer(message(), metadata=(("x-tenant", f"t{i}"),))
        assert variant(again) == first
        found.add(first)
    assert found == {"control", "treatment"}
