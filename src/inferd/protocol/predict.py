"""The simple ``/predict`` JSON shape, for callers who do not want the V2 protocol.

Request::

    {"model_name": "mlp", "model_version": 2, "input_data": {"x": [[0.1, 0.2]]},
     "user_id": "u-17", "request_id": "r-1", "parameters": {"timeout_ms": 50}}

or, row by row (KServe V1 and MLServer style; a key absent from a row is a missing value)::

    {"model_name": "credit", "instances": [{"age": 31, "country": "DE"}, {"age": 45}]}

Response::

    {"request_id": "r-1", "model_name": "mlp", "model_version": "2",
     "predictions": {"y": [[0.3]]}, "latency_ms": 1.2,
     "batch_info": {"batch_size": 4, "wait_time_ms": 0.4, "position_in_batch": 1}}

The request carries no datatypes, so inputs are decoded as whatever numpy infers
(``typed=False``) and the data plane casts them to the model's signature.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from inferd.errors import InferenceFailed, InvalidInput
from inferd.protocol._instances import instances_to_inputs
from inferd.protocol._prescan import PRESCAN_BYTES, Cut, Path, load_scanned
from inferd.protocol._tensors import array_to_json_data, describe, json_object, load_json_object
from inferd.types import InferenceRequest, InferenceResponse

# numpy kinds a JSON value may parse to: booleans, integers, floats and strings. Anything
# else (object arrays) means nulls or objects somewhere in the data.
_INPUT_KINDS = frozenset("biufU")
_OUTPUT_KINDS = frozenset("biufOSU")

# Called with an input's name and (at most) its element count before its data is parsed.
CountCheck = Callable[[str, int], None]


def decode_predict_request(body: bytes, check: CountCheck | None = None) -> InferenceRequest:
    """Decode a ``/predict`` request body.

    A body of PRESCAN_BYTES or more is pre-scanned (:mod:`inferd.protocol._prescan`): each
    large input is counted, and ``check`` called, before any input is parsed.

    Args:
        body: the HTTP body, a JSON object.
        check: called for each large input before its data is parsed; None for none.

    Returns:
        An untyped request (``typed=False``). ``user_id`` becomes ``routing_key`` and
        ``request_id`` becomes ``id`` (a random hex id when absent).
        ``parameters.timeout_ms`` (a number > 0) and ``parameters.priority`` (an integer
        >= 0) fill those fields; the rest of ``parameters`` is kept.

    Raises:
        InvalidInput: naming the field, what was expected and what came.
    """
    if len(body) >= PRESCAN_BYTES:
        doc = load_scanned(body, 3, _is_tensor_data)
        _check_counts(doc.get("input_data"), check)
    else:
        doc = load_json_object(body)
    model_name = doc.get("model_name")
    if not isinstance(model_name, str) or not model_name:
        raise InvalidInput("model_name", "a non-empty string", describe(model_name))
    request = InferenceRequest(
        model_name=model_name,
        model_version=_optional_text("model_version", doc.get("model_version"), allow_int=True),
        inputs=_decode_inputs(doc.get("input_data"), doc.get("instances")),
        # The response always carries a request_id, so mint one the logs can share.
        id=_optional_text("request_id", doc.get("request_id"), allow_int=False) or uuid.uuid4().hex,
        typed=False,
        routing_key=_optional_text("user_id", doc.get("user_id"), allow_int=True),
    )
    _apply_parameters(request, doc.get("parameters"))
    return request


def _is_tensor_data(path: Path) -> bool:
    return len(path) == 2 and path[0] == "input_data"


def _check_counts(raw: object, check: CountCheck | None) -> None:
    if check is None or not isinstance(raw, dict):
        return
    for name, value in raw.items():
        if isinstance(value, Cut):
            check(name, value.values)


def _decode_inputs(raw: object, instances: object) -> dict[str, np.ndarray]:
    if instances is not None:  # rows of named values (KServe V1, MLServer): to columns
        if raw is not None:
            raise InvalidInput("instances", "either input_data or instances", "both")
        return instances_to_inputs(instances)
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput("input_data", "an object mapping input names to lists", describe(raw))
    return {name: _decode_array(f"input_data.{name}", value) for name, value in raw.items()}


def _decode_array(field: str, value: object) -> np.ndarray:
    if isinstance(value, Cut):
        parsed = value.parse_numbers()
        if parsed is not None:
            return parsed  # its kind is a number's or a boolean's
        value = value.load(field)
    expected = "a number, a string, a boolean or a rectangular nested list of them"
    if not isinstance(value, list | int | float | str):
        raise InvalidInput(field, expected, describe(value))
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise InvalidInput(field, expected, f"ragged nested lists ({err})") from None
    if array.dtype.kind not in _INPUT_KINDS:
        raise InvalidInput(field, expected, "nulls, objects or a mix of them with other values")
    return array


def _optional_text(field: str, value: object, *, allow_int: bool) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if allow_int and type(value) is int:
        return str(value)
    expected = "a string or an integer" if allow_int else "a string"
    raise InvalidInput(field, expected, describe(value))


def _apply_parameters(request: InferenceRequest, raw: object) -> None:
    params = json_object(raw, "parameters")
    timeout = params.pop("timeout_ms", None)
    if timeout is not None:
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise InvalidInput("parameters.timeout_ms", "a number > 0", describe(timeout))
        request.timeout_ms = float(timeout)
    priority = params.pop("priority", 0)
    if type(priority) is not int or priority < 0:
        raise InvalidInput("parameters.priority", "an integer >= 0", describe(priority))
    request.priority = priority
    request.parameters = params


def encode_predict_response(response: InferenceResponse) -> bytes:
    """Encode a ``/predict`` response; predictions keep their shape as nested lists.

    Raises:
        InferenceFailed: an output array has a dtype JSON cannot carry (e.g. complex).
    """
    predictions: dict[str, object] = {}
    for name, array in response.outputs.items():
        if array.dtype.kind not in _OUTPUT_KINDS:
            reason = f"output '{name}' has dtype {array.dtype}, which JSON cannot carry"
            raise InferenceFailed(response.model_name, response.model_version, reason)
        predictions[name] = array_to_json_data(array, nested=True)
    batch = response.batch
    doc: dict[str, Any] = {
        "request_id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "predictions": predictions,
        "latency_ms": round(response.latency_ms, 3),
        "batch_info": {
            "batch_size": batch.batch_size,
            "wait_time_ms": round(batch.wait_time_ms, 3),
            "position_in_batch": batch.position_in_batch,
        },
    }
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
