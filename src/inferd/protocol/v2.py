"""Open Inference Protocol (KServe V2) REST codec, JSON and Triton's binary tensor extension.

With the binary extension a body is the JSON header followed by raw tensors::

    [JSON header: Inference-Header-Content-Length bytes][input 0 bytes][input 1 bytes]...

Inputs with ``parameters.binary_data_size`` take their bytes from there, in input order.
Outputs go back binary per ``outputs[i].parameters.binary_data``, else per the request's
``parameters.binary_data_output``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from inferd.errors import InferenceFailed, InvalidInput
from inferd.protocol._prescan import PRESCAN_BYTES, Cut, Path, load_scanned
from inferd.protocol._tensors import (
    array_from_bytes,
    array_from_json,
    array_from_parsed,
    describe,
    json_name,
    json_object,
    json_shape,
    load_json_object,
    wire_tensor,
)
from inferd.types import DATATYPES, InferenceRequest, InferenceResponse, datatype_of

# Request and response header giving the JSON header's length; lower case as ASGI wants.
HEADER_LENGTH = "inference-header-content-length"
JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"

_DATATYPE_SET = frozenset(DATATYPES)
_DATATYPE_CHOICES = f"one of {', '.join(DATATYPES)}"
_NO_SHM = "no shared memory (the shared-memory extension is not supported)"

# Called with each input's name, datatype, declared shape and element count before its data
# is parsed (the server's limits, the model's signature); raises to refuse the request.
DeclaredCheck = Callable[[str, str | None, Sequence[int] | None, int], None]


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """How to encode a response, as the request asked.

    Attributes:
        binary_outputs: outputs the request asked for with ``binary_data: true``.
        all_binary: the request's ``binary_data_output`` parameter.
        json_outputs: outputs the request asked for with ``binary_data: false``.
    """

    binary_outputs: frozenset[str] = frozenset()
    all_binary: bool = False
    json_outputs: frozenset[str] = frozenset()

    def is_binary(self, name: str) -> bool:
        """Whether output ``name`` goes in the binary section rather than in JSON ``data``."""
        if name in self.binary_outputs:
            return True
        return self.all_binary and name not in self.json_outputs


def decode_infer_request(
    body: bytes,
    header_length: int | None,
    model_name: str,
    model_version: str | None,
    check: DeclaredCheck | None = None,
) -> tuple[InferenceRequest, ResponseFormat]:
    """Decode a V2 inference request body.

    A JSON part of PRESCAN_BYTES or more is pre-scanned (:mod:`inferd.protocol._prescan`):
    every input's declared datatype and shape is checked, and its ``data`` counted, before
    any ``data`` is parsed.

    Args:
        body: the whole HTTP body.
        header_length: the ``Inference-Header-Content-Length`` header as an int, or None when
            the request had none (then the whole body is JSON).
        model_name: the model named by the URL.
        model_version: the version named by the URL, or None.
        check: called for each input before its data is parsed; None for none.

    Returns:
        The request and the format its response must take. ``parameters.timeout``
        (microseconds, Triton's unit) becomes ``timeout_ms``; ``priority`` becomes
        ``priority``; ``routing_key`` (or else ``user_id``) becomes ``routing_key``; other
        parameters stay in ``parameters``.

    Raises:
        InvalidInput: naming the field, what was expected and what came.
    """
    doc, binary = _split_body(body, header_length)
    params = json_object(doc.get("parameters"), "parameters")
    inputs = _decode_inputs(doc.get("inputs"), binary, check)
    outputs, fmt = _decode_outputs(doc.get("outputs"), params.pop("binary_data_output", False))
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("id", "a string", describe(request_id))
    request = InferenceRequest(model_name, model_version, inputs, id=request_id, outputs=outputs)
    apply_parameters(request, params)
    return request, fmt


def _split_body(body: bytes, header_length: int | None) -> tuple[dict[str, Any], memoryview]:
    view = memoryview(body)
    if header_length is None:
        header_length = len(view)
    elif not 0 <= header_length <= len(view):
        raise InvalidInput(
            "Inference-Header-Content-Length",
            f"a length from 0 to the body length {len(view)}",
            str(header_length),
        )
    header = view[:header_length]
    if header_length >= PRESCAN_BYTES:
        return load_scanned(header, 4, _is_tensor_data), view[header_length:]
    return load_json_object(header), view[header_length:]


def _is_tensor_data(path: Path) -> bool:
    return len(path) == 3 and path[0] == "inputs" and path[2] == "data"


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a microsecond per input
class _Declared:
    """An input as its JSON entry declares it, before its data is looked at."""

    index: int
    name: str
    datatype: str
    shape: list[int]
    data: object  # the JSON data, a Cut of it, or None for binary data
    binary: slice | None


def _decode_inputs(
    raw: object, binary: memoryview, check: DeclaredCheck | None
) -> dict[str, np.ndarray]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("inputs", "a non-empty list of tensors", describe(raw))
    # Every input's declaration is checked before any input's data is parsed.
    declared: list[_Declared] = []
    names: set[str] = set()
    offset = 0
    for index, entry in enumerate(raw):
        tensor, offset = _declare(index, entry, binary, offset)
        if tensor.name in names:
            raise InvalidInput(
                f"inputs[{index}].name", "unique input names", f"'{tensor.name}' again"
            )
        names.add(tensor.name)
        if check is not None:
            check(tensor.name, tensor.datatype, tensor.shape, math.prod(tensor.shape))
        declared.append(tensor)
    if offset != len(binary):
        raise InvalidInput(
            "body",
            f"{offset} bytes of binary tensor data after the JSON header "
            "(the sum of the inputs' binary_data_size)",
            f"{len(binary)} bytes",
        )
    return {t.name: _array(t, binary) for t in declared}


def _array(tensor: _Declared, binary: memoryview) -> np.ndarray:
    name, datatype, shape = tensor.name, tensor.datatype, tensor.shape
    if tensor.binary is not None:
        return array_from_bytes(name, datatype, shape, binary[tensor.binary])
    data = tensor.data
    if isinstance(data, Cut):
        field = f"inputs[{tensor.index}] '{name}'.data"
        _check_count(field, shape, data)
        if datatype != "BYTES" and (parsed := data.parse_numbers()) is not None:
            array = array_from_parsed(name, tensor.index, datatype, shape, parsed)
            if array is not None:
                return array
        data = data.load(field)
    return array_from_json(name, tensor.index, datatype, shape, data)


def _check_count(field: str, shape: list[int], cut: Cut) -> None:
    """Refuse data whose commas contradict the shape, before parsing it."""
    expected = math.prod(shape)
    if expected == 0:  # a large array cannot be empty
        raise InvalidInput(field, f"0 elements for shape {shape}", f"{cut.nbytes} bytes of data")
    if cut.values != expected:
        raise InvalidInput(field, f"{expected} elements for shape {shape}", f"{cut.values}")


def _declare(index: int, entry: object, binary: memoryview, offset: int) -> tuple[_Declared, int]:
    """Check ``inputs[index]``'s declaration; return it and the next binary offset."""
    if not isinstance(entry, dict):
        raise InvalidInput(f"inputs[{index}]", "a tensor object", describe(entry))
    name = json_name(f"inputs[{index}].name", entry.get("name"))
    where = f"inputs[{index}] '{name}'"
    shape = json_shape(f"{where}.shape", entry.get("shape"))
    datatype = entry.get("datatype")
    if not isinstance(datatype, str) or datatype not in _DATATYPE_SET:
        raise InvalidInput(f"{where}.datatype", _DATATYPE_CHOICES, describe(datatype))
    size = _binary_size(where, entry.get("parameters"))
    if size is None:
        if "data" not in entry:
            raise InvalidInput(where, "'data' or parameters.binary_data_size", "neither")
        return _Declared(index, name, datatype, shape, entry["data"], None), offset
    if "data" in entry:
        raise InvalidInput(where, "either 'data' or parameters.binary_data_size", "both")
    end = offset + size
    if end > len(binary):
        raise InvalidInput(
            f"{where}.parameters.binary_data_size",
            f"at most the {len(binary) - offset} bytes left after the JSON header and earlier "
            "binary inputs (is Inference-Header-Content-Length set?)",
            str(size),
        )
    return _Declared(index, name, datatype, shape, None, slice(offset, end)), end


def _binary_size(where: str, raw: object) -> int | None:
    params = json_object(raw, f"{where}.parameters")
    _refuse(f"{where}.parameters", params, "shared_memory_region", _NO_SHM)
    size = params.get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):
        raise InvalidInput(
            f"{where}.parameters.binary_data_size", "an integer >= 0", describe(size)
        )
    return size


def _decode_outputs(raw: object, all_binary: object) -> tuple[list[str] | None, ResponseFormat]:
    if not isinstance(all_binary, bool):
        raise InvalidInput("parameters.binary_data_output", "true or false", describe(all_binary))
    if raw is None or raw == []:
        return None, ResponseFormat(all_binary=all_binary)
    if not isinstance(raw, list):
        raise InvalidInput("outputs", "a list of requested outputs", describe(raw))
    names: list[str] = []
    binary: set[str] = set()
    json: set[str] = set()
    for index, entry in enumerate(raw):
        name, flag = _decode_output(index, entry)
        if name in names:
            raise InvalidInput(f"outputs[{index}].name", "unique output names", f"'{name}' again")
        names.append(name)
        if flag is not None:
            (binary if flag else json).add(name)
    return names, ResponseFormat(frozenset(binary), all_binary, frozenset(json))


def _decode_output(index: int, entry: object) -> tuple[str, bool | None]:
    """Decode ``outputs[index]``; return its name and its ``binary_data`` flag, if any."""
    if not isinstance(entry, dict):
        raise InvalidInput(f"outputs[{index}]", "an object with a name", describe(entry))
    name = json_name(f"outputs[{index}].name", entry.get("name"))
    where = f"outputs[{index}] '{name}'.parameters"
    params = json_object(entry.get("parameters"), where)
    if params.get("classification"):
        _refuse(
            where, params, "classification", "0 (the classification extension is not supported)"
        )
    _refuse(where, params, "shared_memory_region", _NO_SHM)
    flag = params.get("binary_data")
    if flag is not None and not isinstance(flag, bool):
        raise InvalidInput(f"{where}.binary_data", "true or false", describe(flag))
    return name, flag


def apply_parameters(request: InferenceRequest, params: dict[str, Any]) -> None:
    """Move the parameters inferd acts on into the request's own fields."""
    timeout = params.pop("timeout", None)
    if timeout is not None:
        if type(timeout) is not int or timeout < 0:
            raise InvalidInput(
                "parameters.timeout", "microseconds as an integer >= 0", describe(timeout)
            )
        # Triton reads 0 as "no timeout".
        request.timeout_ms = timeout / 1000.0 if timeout else None
    priority = params.pop("priority", 0)
    if type(priority) is not int or priority < 0:
        raise InvalidInput("parameters.priority", "an integer >= 0", describe(priority))
    request.priority = priority
    user_id = params.pop("user_id", None)
    key = params.pop("routing_key", None)
    key = user_id if key is None else key
    if key is not None:
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise InvalidInput("parameters.routing_key", "a string", describe(key))
        request.routing_key = str(key)
    request.parameters = params


def _refuse(where: str, params: dict[str, Any], key: str, expected: str) -> None:
    """Refuse a parameter that asks for an extension inferd does not implement."""
    if key in params:
        raise InvalidInput(f"{where}.{key}", expected, describe(params[key]))


def encode_infer_response(
    response: InferenceResponse, fmt: ResponseFormat
) -> tuple[bytes, dict[str, str]]:
    """Encode a V2 inference response.

    Args:
        response: the data plane's answer; outputs are written in its dict order.
        fmt: what the request asked for, from :func:`decode_infer_request`.

    Returns:
        The body and the headers to send with it (lower-case names): ``content-type``, and
        ``inference-header-content-length`` when some output went binary.

    Raises:
        InferenceFailed: an output array has a dtype with no V2 datatype.
    """
    chunks: list[bytes] = []
    outputs = [
        _encode_output(response, name, arr, fmt, chunks) for name, arr in response.outputs.items()
    ]
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = outputs
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, {"content-type": JSON_CONTENT_TYPE}
    headers = {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(header))}
    return b"".join([header, *chunks]), headers


def _encode_output(
    response: InferenceResponse,
    name: str,
    array: np.ndarray,
    fmt: ResponseFormat,
    chunks: list[bytes],
) -> dict[str, Any]:
    try:
        datatype = datatype_of(array)
    except ValueError as err:
        reason = f"output '{name}': {err}"
        raise InferenceFailed(response.model_name, response.model_version, reason) from None
    return wire_tensor(name, datatype, array, fmt.is_binary(name), chunks)


def encode_error(message: str) -> bytes:
    """Encode the V2 error body ``{"error": message}``."""
    return orjson.dumps({"error": message})
