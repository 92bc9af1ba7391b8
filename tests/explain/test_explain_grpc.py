"""``parameters {explain: true}`` on gRPC ModelInfer, against a real in-process server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.settings import Settings


@pytest.fixture
async def channel(repo: Path, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    server = inference_server(app.dataplane, "127.0.0.1", 0)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(0)
    await app.dataplane.stop()


async def infer(channel: grpc.aio.Channel, explain: object) -> pb.ModelInferResponse:
    msg = pb.ModelInferRequest(model_name="linear", model_version="1")
    if isinstance(explain, bool):
        msg.parameters["explain"].bool_param = explain
    else:
        msg.parameters["explain"].string_param = str(explain)
    msg.inputs.add(name="x", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1, 3])
    call = channel.unary_unary(
        f"/{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    response: pb.ModelInferResponse = await call(msg, timeout=30)
    return response


async def test_explain_on_model_infer_answers_attributions(channel: grpc.aio.Channel) -> None:
    response = await infer(channel, True)
    names = [o.name for o in response.outputs]
    assert names == ["attributions", "base_value"]
    values = [np.frombuffer(raw, dtype="<f8") for raw in response.raw_output_contents]
    np.testing.assert_allclose(values[0], [2.0, 6.0])  # y = 2x + 1 against x = 0
    np.testing.assert_allclose(values[1], [1.0, 1.0])
    assert list(response.outputs[0].shape) == [2, 1]
    assert response.parameters["explainer"].string_param == "kernel_shap"
    plain = await infer(channel, False)
    assert [o.name for o in plain.outputs] == ["y"]


async def test_a_non_boolean_explain_is_invalid(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await infer(channel, "yes")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters.explain: expected true or false" in str(info.value.details())
