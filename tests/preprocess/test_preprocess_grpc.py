"""Declared preprocessing over gRPC: named raw inputs to ModelInfer, refusals as
INVALID_ARGUMENT (an in-process server on port 0)."""

from pathlib import Path

import grpc
import numpy as np
import pytest
from fixtures.preprocess import ROWS, expected_features, write_credit_model

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.settings import Settings


def request(countries: list[str]) -> pb.ModelInferRequest:
    rows = [ROWS[0], ROWS[2]]
    msg = pb.ModelInferRequest(model_name="credit")
    age = msg.inputs.add(name="age", datatype="INT64", shape=[2])
    age.contents.int64_contents.extend([int(r["age"]) for r in rows])
    income = msg.inputs.add(name="income", datatype="FP32", shape=[2, 1])
    income.contents.fp32_contents.extend([float(r["income"]) for r in rows])
    country = msg.inputs.add(name="country", datatype="BYTES", shape=[2])
    country.contents.bytes_contents.extend([c.encode() for c in countries])
    return msg


async def test_model_infer_with_raw_columns(tmp_path: Path) -> None:
    write_credit_model(tmp_path / "repo")
    app = build_app(Settings(home=tmp_path, model_repository=tmp_path / "repo"))
    assert await app.dataplane.start() == {}
    server = inference_server(app.dataplane, "127.0.0.1", 0, transport="native")
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    infer = channel.unary_unary(
        f"/{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    try:
        response = await infer(request(["DE", "DE"]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await infer(request(["DE", "XX"]), timeout=10)
    finally:
        await channel.close()
        await server.stop(1.0)
        await app.dataplane.stop()
    y = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 5)
    np.testing.assert_allclose(y, expected_features([ROWS[0], ROWS[2]]), rtol=1e-6)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "feature 'country': one_hot: unknown category 'XX'" in str(refused.value.details())
