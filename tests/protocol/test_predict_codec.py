"""The /predict codec."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from inferd.errors import InferenceFailed, InvalidInput
from inferd.protocol import decode_predict_request, encode_predict_response
from inferd.types import BatchInfo, InferenceResponse


def test_decode_full_request() -> None:
    body = orjson.dumps(
        {
            "model_name": "mlp",
            "model_version": 2,
            "input_data": {"x": [[0.5, 1.5]], "tag": ["a", "b"], "n": 3},
            "user_id": "u-1",
            "request_id": "r-1",
            "parameters": {"timeout_ms": 50, "priority": 1, "temperature": 0.1},
        }
    )
    request = decode_predict_request(body)
    assert request.model_name == "mlp"
    assert request.model_version == "2"
    assert request.id == "r-1"
    assert request.routing_key == "u-1"
    assert not request.typed
    assert request.timeout_ms == 50.0
    assert request.priority == 1
    assert request.parameters == {"temperature": 0.1}
    np.testing.assert_array_equal(request.inputs["x"], [[0.5, 1.5]])
    assert request.inputs["tag"].tolist() == ["a", "b"]
    assert request.inputs["n"].shape == ()


def test_decode_minimal_request() -> None:
    request = decode_predict_request(b'{"model_name": "linear", "input_data": {"x": [1, 2]}}')
    assert request.model_version is None
    assert request.routing_key is None
    assert request.id
    assert request.id != decode_predict_request(b'{"model_name": "m", "input_data": {"x": 1}}').id
    assert request.inputs["x"].dtype == np.int64


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([], "body"),
        ({"input_data": {"x": [1]}}, "model_name"),
        ({"model_name": "m"}, "input_data"),
        ({"model_name": "m", "input_data": {}}, "input_data"),
        ({"model_name": "m", "input_data": {"x": [[1, 2], [3]]}}, "input_data.x"),
        ({"model_name": "m", "input_data": {"x": [1, None]}}, "input_data.x"),
        ({"model_name": "m", "input_data": {"x": {"a": 1}}}, "input_data.x"),
        ({"model_name": "m", "input_data": {"x": [{"a": 1}]}}, "input_data.x"),
        ({"model_name": "m", "input_data": {"x": [[1], 2]}}, "input_data.x"),
        ({"model_name": "m", "input_data": {"x": [1]}, "model_version": 1.5}, "model_version"),
        ({"model_name": "m", "input_data": {"x": [1]}, "user_id": ["u"]}, "user_id"),
        ({"model_name": "m", "input_data": {"x": [1]}, "request_id": 5}, "request_id"),
        ({"model_name": "m", "input_data": {"x": [1]}, "parameters": []}, "parameters"),
        (
            {"model_name": "m", "input_data": {"x": [1]}, "parameters": {"timeout_ms": 0}},
            "parameters.timeout_ms",
        ),
    ],
)
def test_malformed_requests_name_the_field(doc: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_predict_request(orjson.dumps(doc))
    assert info.value.field == field


def test_invalid_json_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"^body: expected a JSON object, got invalid JSON"):
        decode_predict_request(b'{"model_name": ')


def test_encode_response_keeps_output_shapes() -> None:
    response = InferenceResponse(
        model_name="mlp",
        model_version="2",
        outputs={
            "y": np.arange(6, dtype=np.float32).reshape(2, 3),
            "label": np.array([b"cat", b"dog"], dtype=np.object_),
            "score": np.array(0.5, dtype=np.float16),
        },
        id="r-1",
        batch=BatchInfo(batch_size=4, wait_time_ms=0.25, position_in_batch=1),
        latency_ms=1.23456,
    )
    assert orjson.loads(encode_predict_response(response)) == {
        "request_id": "r-1",
        "model_name": "mlp",
        "model_version": "2",
        "predictions": {
            "y": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
            "label": ["cat", "dog"],
            "score": 0.5,
        },
        "latency_ms": 1.235,
        "batch_info": {"batch_size": 4, "wait_time_ms": 0.25, "position_in_batch": 1},
    }


def test_encode_refuses_outputs_json_cannot_carry() -> None:
    response = InferenceResponse("m", "1", {"z": np.ones(2, np.complex128)})
    with pytest.raises(InferenceFailed, match="output 'z'"):
        encode_predict_response(response)
