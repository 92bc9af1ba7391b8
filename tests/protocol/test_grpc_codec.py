"""The gRPC codec: typed and raw contents for every datatype, errors naming the field."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fixtures.triton import DATATYPES, sample

from inferd.client._grpc import GrpcProtocol
from inferd.client._grpc import decode_infer_response as client_decode
from inferd.errors import InvalidInput
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import (
    CONTENTS_FIELD,
    decode_infer_request,
    decode_parameters,
    encode_infer_response,
)
from inferd.types import InferenceResponse


def typed_request(datatype: str, array: np.ndarray) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m")
    tensor = msg.inputs.add(name="x", datatype=datatype, shape=array.shape)
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.reshape(-1).tolist())
    return msg


@pytest.mark.parametrize("datatype", DATATYPES)
def test_raw_contents_round_trip_every_datatype(datatype: str) -> None:
    array = sample(datatype)
    call = GrpcProtocol().infer("m", {"x": array}, "2", ["y"], "id-1", {"priority": 2})
    request = decode_infer_request(
        pb.ModelInferRequest.FromString(call.request.SerializeToString())
    )
    assert (request.model_name, request.model_version, request.id) == ("m", "2", "id-1")
    assert (request.outputs, request.priority) == (["y"], 2)
    got = request.inputs["x"]
    assert got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)
    response = encode_infer_response(InferenceResponse("m", "2", {"y": got}, id="id-1"))
    result = client_decode(pb.ModelInferResponse.FromString(response.SerializeToString()))
    assert result.outputs["y"].dtype == array.dtype
    np.testing.assert_array_equal(result.outputs["y"], array)


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "FP16"])
def test_typed_contents_every_datatype(datatype: str) -> None:
    array = sample(datatype)
    got = decode_infer_request(typed_request(datatype, array)).inputs["x"]
    assert got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)


def test_bytes_are_bytes_not_text() -> None:
    array = np.array([b"\xff\x00", b""], dtype=np.object_)
    call = GrpcProtocol().infer("m", {"x": array}, None, None, None, None)
    np.testing.assert_array_equal(decode_infer_request(call.request).inputs["x"], array)


def test_parameters_timeout_and_deadline() -> None:
    msg = typed_request("FP32", np.ones(2, dtype=np.float32))
    msg.parameters["timeout"].int64_param = 500_000  # µs, Triton's unit
    msg.parameters["user_id"].string_param = "u7"
    msg.parameters["custom"].double_param = 0.5
    request = decode_infer_request(msg)
    assert request.timeout_ms == 500
    assert request.routing_key == "u7"
    assert request.parameters == {"custom": 0.5}
    assert decode_infer_request(msg, deadline_s=0.1).timeout_ms == pytest.approx(100)
    assert decode_infer_request(msg, deadline_s=9).timeout_ms == 500
    assert decode_parameters(msg.parameters)["timeout"] == 500_000


def _raw_request() -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="x", datatype="FP32", shape=[2])
    msg.raw_input_contents.append(np.ones(2, dtype="<f4").tobytes())
    return msg


def _classify(msg: pb.ModelInferRequest) -> None:
    msg.outputs.add(name="y").parameters["classification"].int64_param = 2


def _shm(msg: pb.ModelInferRequest) -> None:
    msg.inputs[0].parameters["shared_memory_region"].string_param = "r"


def _timeout_text(msg: pb.ModelInferRequest) -> None:
    msg.parameters["timeout"].string_param = "soon"


@pytest.mark.parametrize(
    ("mutate", "field", "text"),
    [
        (lambda m: m.raw_input_contents.append(b""), "raw_input_contents", "one entry per input"),
        (lambda m: m.inputs[0].contents.fp32_contents.append(1), "inputs[0] 'x'", "both"),
        (lambda m: setattr(m.inputs[0], "datatype", "FLOAT"), "inputs[0] 'x'.datatype", "'FLOAT'"),
        (lambda m: m.inputs[0].shape.append(-1), "inputs[0] 'x'.shape", "dimensions >= 0"),
        (lambda m: setattr(m.inputs[0], "name", ""), "inputs[0].name", "non-empty"),
        (lambda m: m.raw_input_contents.__setitem__(0, b"abc"), "input 'x' binary data", "8 bytes"),
        (_classify, "outputs[0] 'y'.parameters.classification", "not supported"),
        (_shm, "inputs[0] 'x'.parameters.shared_memory_region", "shared memory"),
        (_timeout_text, "parameters.timeout", "microseconds"),
    ],
)
def test_bad_raw_requests(
    mutate: Callable[[pb.ModelInferRequest], object], field: str, text: str
) -> None:
    msg = _raw_request()
    mutate(msg)
    with pytest.raises(InvalidInput) as info:
        decode_infer_request(msg)
    assert info.value.field == field
    assert text in info.value.message


def test_bad_typed_requests() -> None:
    cases = [
        (typed_request("INT32", np.ones(3, dtype=np.int32)), "FP16", "raw_input_contents"),
        (typed_request("FP32", np.ones(3, dtype=np.float32)), "INT32", "int_contents (INT32)"),
    ]
    for msg, datatype, text in cases:
        msg.inputs[0].datatype = datatype
        with pytest.raises(InvalidInput, match=r"inputs\[0\] 'x'.contents") as info:
            decode_infer_request(msg)
        assert text in info.value.message
    msg = typed_request("INT32", np.array([1, 300], dtype=np.int32))
    msg.inputs[0].datatype = "INT8"
    with pytest.raises(InvalidInput, match=r"values in \[-128, 127\] \(INT8\)"):
        decode_infer_request(msg)
    msg = typed_request("FP32", np.ones(3, dtype=np.float32))
    msg.inputs[0].shape[0] = 4
    with pytest.raises(InvalidInput, match="4 elements for shape"):
        decode_infer_request(msg)
    msg = typed_request("FP32", np.ones(1, dtype=np.float32))
    msg.inputs.add().CopyFrom(msg.inputs[0])
    with pytest.raises(InvalidInput, match="unique input names"):
        decode_infer_request(msg)
    with pytest.raises(InvalidInput, match="non-empty list"):
        decode_infer_request(pb.ModelInferRequest(model_name="m"))
