"""V2 REST codec: JSON and the binary extension, checked against tritonclient itself."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from inferd.errors import InferenceFailed, InvalidInput
from inferd.protocol import (
    HEADER_LENGTH,
    ResponseFormat,
    decode_infer_request,
    encode_error,
    encode_infer_response,
)
from inferd.types import DATATYPE_TO_DTYPE, DATATYPES, InferenceRequest, InferenceResponse

NUMERIC = [d for d in DATATYPES if d != "BYTES"]


def sample(datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([b"one", b"dos", b"", "tr\u00e9s".encode()], dtype=np.object_)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    return (np.arange(4) * 3).astype(DATATYPE_TO_DTYPE[datatype]).reshape(2, 2)


def triton_request(
    arrays: dict[str, np.ndarray],
    binary: bool,
    outputs: list[Any] | None = None,
    **kwargs: Any,
) -> tuple[bytes, int | None]:
    """Build a request body exactly as tritonclient's HTTP client does."""
    inputs = []
    for name, arr in arrays.items():
        datatype = "BYTES" if arr.dtype == np.object_ else triton.np_to_triton_dtype(arr.dtype)
        inputs.append(triton.InferInput(name, list(arr.shape), datatype))
        inputs[-1].set_data_from_numpy(arr, binary_data=binary)
    options: dict[str, Any] = {
        "request_id": "",
        "sequence_id": 0,
        "sequence_start": False,
        "sequence_end": False,
        "priority": 0,
        "timeout": None,
        "custom_parameters": None,
    }
    options.update(kwargs)
    body, header_length = _get_inference_request(inputs=inputs, outputs=outputs, **options)
    return bytes(body), header_length


def decode(body: bytes, header_length: int | None = None) -> tuple[InferenceRequest, Any]:
    return decode_infer_request(body, header_length, "m", None)


def as_triton_result(body: bytes, headers: dict[str, str]) -> triton.InferResult:
    length = headers.get(HEADER_LENGTH)
    return triton.InferResult.from_response_body(
        body, verbose=False, header_length=None if length is None else int(length)
    )


def response(outputs: dict[str, np.ndarray], **kwargs: Any) -> InferenceResponse:
    return InferenceResponse(model_name="m", model_version="1", outputs=outputs, **kwargs)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_tritonclient_requests_decode_to_the_same_arrays(datatype: str, binary: bool) -> None:
    arr = sample(datatype)
    body, header_length = triton_request({"x": arr, "pad": np.ones(3, np.float32)}, binary)
    assert (header_length is not None) == binary
    request, fmt = decode(body, header_length)
    assert list(request.inputs) == ["x", "pad"]
    assert request.inputs["x"].dtype == DATATYPE_TO_DTYPE[datatype]
    np.testing.assert_array_equal(request.inputs["x"], arr)
    np.testing.assert_array_equal(request.inputs["pad"], np.ones(3, np.float32))
    # With no requested outputs tritonclient asks for every output in binary.
    assert request.outputs is None
    assert fmt.is_binary("anything")
    assert "binary_data_output" not in request.parameters


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_tritonclient_parses_our_responses(datatype: str, binary: bool) -> None:
    arr = sample(datatype)
    fmt = ResponseFormat(all_binary=binary)
    body, headers = encode_infer_response(response({"y": arr}, id="r1"), fmt)
    result = as_triton_result(body, headers)
    got = result.as_numpy("y")
    assert got.shape == arr.shape
    if datatype == "BYTES":
        # tritonclient hands back JSON BYTES as str and binary BYTES as bytes.
        as_text = [v if isinstance(v, str) else v.decode() for v in got.reshape(-1).tolist()]
        assert as_text == [v.decode() for v in arr.reshape(-1).tolist()]
    else:
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr)
    assert result.get_response()["id"] == "r1"
    assert result.get_response()["model_version"] == "1"


def test_requested_outputs_choose_binary_or_json_per_output() -> None:
    outputs = [triton.InferRequestedOutput("b", binary_data=True)]
    outputs.append(triton.InferRequestedOutput("j", binary_data=False))
    body, header_length = triton_request({"x": np.ones(2, np.float32)}, True, outputs)
    request, fmt = decode(body, header_length)
    assert request.outputs == ["b", "j"]
    assert fmt.is_binary("b")
    assert not fmt.is_binary("j")

    arrays = {"b": np.arange(3, dtype=np.int64), "j": np.full((2, 2), 0.5, np.float32)}
    out, headers = encode_infer_response(response(arrays), fmt)
    assert headers["content-type"] == "application/octet-stream"
    header = orjson.loads(out[: int(headers[HEADER_LENGTH])])
    assert [o["name"] for o in header["outputs"]] == ["b", "j"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 24}
    assert "data" not in header["outputs"][0]
    assert header["outputs"][1]["data"] == [0.5, 0.5, 0.5, 0.5]
    result = as_triton_result(out, headers)
    np.testing.assert_array_equal(result.as_numpy("b"), arrays["b"])
    np.testing.assert_array_equal(result.as_numpy("j"), arrays["j"])


def test_explicit_json_output_overrides_binary_data_output() -> None:
    doc = {
        "parameters": {"binary_data_output": True},
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
        "outputs": [{"name": "j", "parameters": {"binary_data": False}}, {"name": "b"}],
    }
    _, fmt = decode(orjson.dumps(doc))
    assert not fmt.is_binary("j")
    assert fmt.is_binary("b")


def test_json_response_has_no_header_length_and_plain_json() -> None:
    body, headers = encode_infer_response(
        response({"y": np.array([[1.5, 2.5]], np.float32)}), ResponseFormat()
    )
    assert headers == {"content-type": "application/json"}
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "1",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}],
    }


def test_parameters_map_to_request_fields() -> None:
    body, header_length = triton_request(
        {"x": np.ones(1, np.float32)},
        False,
        request_id="abc",
        priority=2,
        timeout=1500,
        custom_parameters={"user_id": "u1", "temperature": 0.5},
    )
    request, _ = decode(body, header_length)
    assert request.id == "abc"
    assert request.priority == 2
    assert request.timeout_ms == 1.5
    assert request.routing_key == "u1"
    assert request.parameters == {"temperature": 0.5}
    assert request.model_name == "m"
    assert request.typed


def test_routing_key_wins_over_user_id() -> None:
    doc = {
        "parameters": {"routing_key": "k", "user_id": "u", "timeout": 0},
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
    }
    request, _ = decode(orjson.dumps(doc))
    assert request.routing_key == "k"
    assert request.timeout_ms is None


def test_multiple_binary_inputs_take_bytes_in_order() -> None:
    arrays = {
        "a": np.arange(5, dtype=np.uint8),
        "s": np.array([b"xyz", b"q"], dtype=np.object_),
        "f": np.arange(6, dtype=np.float64).reshape(3, 2),
    }
    body, header_length = triton_request(arrays, True)
    request, _ = decode(body, header_length)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(request.inputs[name], arr)


def valid_input(**changes: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}
    tensor.update(changes)
    return {k: v for k, v in tensor.items() if v is not None}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([1, 2], "body"),
        ({}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [5]}, "inputs[0]"),
        ({"inputs": [valid_input(name=3)]}, "inputs[0].name"),
        ({"inputs": [valid_input(shape="2")]}, "inputs[0] 'x'.shape"),
        ({"inputs": [valid_input(shape=[-1])]}, "inputs[0] 'x'.shape"),
        ({"inputs": [valid_input(datatype="FLOAT")]}, "inputs[0] 'x'.datatype"),
        ({"inputs": [valid_input(data=None)]}, "inputs[0] 'x'"),
        ({"inputs": [valid_input(), valid_input()]}, "inputs[1].name"),
        ({"inputs": [valid_input(data=[1.0])]}, "inputs[0] 'x'.data"),
        ({"inputs": [valid_input(parameters=[])]}, "inputs[0] 'x'.parameters"),
        ({"inputs": [valid_input()], "id": 7}, "id"),
        ({"inputs": [valid_input()], "parameters": 1}, "parameters"),
        ({"inputs": [valid_input()], "parameters": {"timeout": -1}}, "parameters.timeout"),
        ({"inputs": [valid_input()], "parameters": {"priority": "hi"}}, "parameters.priority"),
        (
            {"inputs": [valid_input()], "parameters": {"binary_data_output": 1}},
            "parameters.binary_data_output",
        ),
        ({"inputs": [valid_input()], "outputs": {"y": 1}}, "outputs"),
        ({"inputs": [valid_input()], "outputs": [{}]}, "outputs[0].name"),
        (
            {"inputs": [valid_input()], "outputs": [{"name": "y"}, {"name": "y"}]},
            "outputs[1].name",
        ),
        (
            {
                "inputs": [valid_input()],
                "outputs": [{"name": "y", "parameters": {"binary_data": 1}}],
            },
            "outputs[0] 'y'.parameters.binary_data",
        ),
        (
            {
                "inputs": [valid_input()],
                "outputs": [{"name": "y", "parameters": {"classification": 3}}],
            },
            "outputs[0] 'y'.parameters.classification",
        ),
        (
            {"inputs": [valid_input(data=None, parameters={"shared_memory_region": "r"})]},
            "inputs[0] 'x'.parameters.shared_memory_region",
        ),
    ],
)
def test_malformed_json_requests_name_the_field(doc: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode(orjson.dumps(doc))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: expected ")


def test_unknown_datatype_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInput, match=r"BOOL, UINT8.*BYTES, got str 'FLOAT'"):
        decode(orjson.dumps({"inputs": [valid_input(datatype="FLOAT")]}))


def test_invalid_json_shows_the_error_and_the_start_of_the_body() -> None:
    with pytest.raises(
        InvalidInput, match=r"^body: expected a JSON object, got invalid JSON .*'\{inputs"
    ):
        decode(b"{inputs: []}")


def binary_body(sizes: list[int], payload: bytes, **tensor: Any) -> tuple[bytes, int]:
    inputs = [
        {
            "name": f"x{i}",
            "shape": [size],
            "datatype": "UINT8",
            "parameters": {"binary_data_size": size},
        }
        | tensor
        for i, size in enumerate(sizes)
    ]
    header = orjson.dumps({"inputs": inputs})
    return header + payload, len(header)


@pytest.mark.parametrize(
    ("sizes", "payload", "match"),
    [
        ([2, 2], b"abcde", r"^body: expected 4 bytes of binary tensor data.*got 5 bytes"),
        ([2, 2], b"abc", r"^inputs\[1\] 'x1'.parameters.binary_data_size: expected at most the 1"),
        ([2], b"", r"binary_data_size: expected at most the 0 bytes"),
    ],
)
def test_binary_sizes_must_add_up_to_the_body(sizes: list[int], payload: bytes, match: str) -> None:
    body, header_length = binary_body(sizes, payload)
    with pytest.raises(InvalidInput, match=match):
        decode(body, header_length)


def test_binary_size_without_header_length_is_refused() -> None:
    body, _ = binary_body([2], b"")
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        decode(body, None)


def test_data_and_binary_size_together_are_refused() -> None:
    body, header_length = binary_body([2], b"ab", data=[1, 2])
    with pytest.raises(InvalidInput, match=r"either 'data' or parameters\.binary_data_size"):
        decode(body, header_length)


@pytest.mark.parametrize("header_length", [-1, 10_000])
def test_header_length_outside_the_body_is_refused(header_length: int) -> None:
    body, _ = binary_body([2], b"ab")
    with pytest.raises(InvalidInput) as info:
        decode(body, header_length)
    assert info.value.field == "Inference-Header-Content-Length"


def test_binary_size_that_does_not_match_the_shape_is_refused() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "f",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    with pytest.raises(InvalidInput, match=r"input 'f' binary data: expected 8 bytes.*got 4 bytes"):
        decode(header + b"\0\0\0\0", len(header))


def test_outputs_without_a_v2_datatype_fail_the_request() -> None:
    with pytest.raises(InferenceFailed, match="output 'z'"):
        encode_infer_response(response({"z": np.ones(2, np.complex64)}), ResponseFormat())


def test_error_body() -> None:
    assert orjson.loads(encode_error("bad 'x'")) == {"error": "bad 'x'"}


def test_mlp_sized_request_and_response() -> None:
    """Decode 256 floats and encode 10: numeric data stays in numpy from bytes to bytes."""
    doc = {"inputs": [{"name": "x", "shape": [1, 256], "datatype": "FP32", "data": [0.25] * 256}]}
    request, fmt = decode(orjson.dumps(doc))
    assert request.inputs["x"].shape == (1, 256)
    assert request.inputs["x"].dtype == np.float32
    body, _ = encode_infer_response(response({"y": np.ones((1, 10), np.float32)}), fmt)
    assert orjson.loads(body)["outputs"][0]["data"] == [1.0] * 10
