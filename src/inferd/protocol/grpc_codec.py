"""Open Inference Protocol gRPC codec: ``ModelInferRequest`` <-> requests and responses.

Tensors travel either as typed ``contents`` (``fp32_contents``, ``int_contents``...) or as
``raw_input_contents`` / ``raw_output_contents``, whose bytes are laid out exactly like
Triton's binary HTTP extension: the same helpers (:func:`array_from_bytes`,
:func:`array_to_bytes`) read and write both, so datatypes and BYTES behave identically over
HTTP and gRPC. Responses always use raw contents, as Triton does.

Both directions live here: the server decodes requests and encodes responses, the client
(:mod:`inferd.client`) encodes requests and decodes responses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from inferd.errors import InferenceFailed, InvalidInput
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol._tensors import array_from_bytes, array_to_bytes, check_shape_bounds
from inferd.protocol.v2 import apply_parameters
from inferd.types import (
    DATATYPE_TO_DTYPE,
    DATATYPES,
    InferenceRequest,
    InferenceResponse,
    datatype_of,
)

SERVICE = "inference.GRPCInferenceService"

# The typed contents field each datatype travels in (FP16 has none: raw contents only).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELD.values())))
# The numpy dtype each typed contents field holds; narrower integers are range-checked.
_CONTENTS_DTYPE: dict[str, np.dtype[Any]] = {
    "bool_contents": np.dtype(np.bool_),
    "int_contents": np.dtype(np.int32),
    "int64_contents": np.dtype(np.int64),
    "uint_contents": np.dtype(np.uint32),
    "uint64_contents": np.dtype(np.uint64),
    "fp32_contents": np.dtype(np.float32),
    "fp64_contents": np.dtype(np.float64),
}
_DATATYPE_SET = frozenset(DATATYPES)
_NO_SHM = "no shared memory (the shared-memory extension is not supported)"


def decode_parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """Turn a ``map<string, InferParameter>`` into plain Python values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        kind = value.WhichOneof("parameter_choice")
        out[key] = None if kind is None else getattr(value, kind)
    return out


def encode_parameters(values: Mapping[str, Any], params: Any) -> None:
    """Write plain values into a ``map<string, InferParameter>`` (``params``).

    Raises:
        InvalidInput: a value that is not a bool, int, float or str.
    """
    for key, value in values.items():
        target = params[key]
        if isinstance(value, bool):
            target.bool_param = value
        elif isinstance(value, int):
            target.int64_param = value
        elif isinstance(value, float):
            target.double_param = value
        elif isinstance(value, str):
            target.string_param = value
        else:
            raise InvalidInput(f"parameters.{key}", "a bool, int, float or str", repr(value))


def decode_infer_request(
    msg: pb.ModelInferRequest, deadline_s: float | None = None
) -> InferenceRequest:
    """Decode a ``ModelInferRequest`` into a request for the data plane.

    Args:
        msg: the message as it came.
        deadline_s: seconds left before the call's gRPC deadline, or None; the request's
            timeout becomes the shorter of it and ``parameters.timeout``.

    Raises:
        InvalidInput: naming the field, what was expected and what came (the parameters'
            messages are the HTTP codec's).
    """
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InvalidInput(
            "raw_input_contents", f"one entry per input ({len(msg.inputs)})", f"{len(raw)}"
        )
    if not msg.inputs:
        raise InvalidInput("inputs", "a non-empty list of tensors", "none")
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(msg.inputs):
        array = _decode_input(index, tensor, raw[index] if raw else None)
        if tensor.name in inputs:
            raise InvalidInput(f"inputs[{index}].name", "unique input names", f"'{tensor.name}'")
        inputs[tensor.name] = array
    outputs = [_decode_output(i, out) for i, out in enumerate(msg.outputs)] or None
    if outputs is not None and len(set(outputs)) != len(outputs):
        raise InvalidInput("outputs", "unique output names", str(outputs))
    request = InferenceRequest(
        msg.model_name, msg.model_version or None, inputs, id=msg.id or None, outputs=outputs
    )
    apply_parameters(request, decode_parameters(msg.parameters))
    if deadline_s is not None:
        deadline_ms = max(deadline_s, 0.0) * 1000.0
        if request.timeout_ms is None or deadline_ms < request.timeout_ms:
            request.timeout_ms = deadline_ms
    return request


def _decode_input(
    index: int, tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None
) -> np.ndarray:
    name = tensor.name
    if not name:
        raise InvalidInput(f"inputs[{index}].name", "a non-empty string", "an empty string")
    where = f"inputs[{index}] '{name}'"
    datatype = tensor.datatype
    if datatype not in _DATATYPE_SET:
        raise InvalidInput(f"{where}.datatype", f"one of {', '.join(DATATYPES)}", repr(datatype))
    shape = list(tensor.shape)
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{where}.shape", "dimensions >= 0", str(shape))
    check_shape_bounds(f"{where}.shape", shape)
    if "shared_memory_region" in tensor.parameters:
        raise InvalidInput(f"{where}.parameters.shared_memory_region", _NO_SHM, "a region")
    # HasField first: the usual raw-contents request then skips eight field lookups.
    contents = tensor.contents if tensor.HasField("contents") else None
    filled = [f for f in _ALL_FIELDS if len(getattr(contents, f))] if contents else []
    if raw is not None:
        if filled:
            raise InvalidInput(where, "either contents or raw_input_contents", "both")
        return array_from_bytes(name, datatype, shape, raw)
    return _from_contents(where, datatype, shape, tensor.contents, filled)


def _from_contents(
    where: str, datatype: str, shape: list[int], contents: Any, filled: list[str]
) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(
            f"{where}.contents", f"raw_input_contents ({datatype} has no typed contents)", "none"
        )
    if any(f != field for f in filled):
        raise InvalidInput(f"{where}.contents", f"{field} ({datatype})", ", ".join(filled))
    values = getattr(contents, field)
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidInput(
            f"{where}.contents", f"{expected} elements for shape {shape}", f"{len(values)}"
        )
    if datatype == "BYTES":
        array = np.empty(expected, dtype=np.object_)
        array[:] = list(values)
        return array.reshape(shape)
    dtype = DATATYPE_TO_DTYPE[datatype]
    wide = np.array(values, dtype=_CONTENTS_DTYPE[field])
    if wide.dtype != dtype and wide.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = int(wide.min()), int(wide.max())
        if low < info.min or high > info.max:
            raise InvalidInput(
                f"{where}.contents",
                f"values in [{info.min}, {info.max}] ({datatype})",
                f"values in [{low}, {high}]",
            )
    return wide.astype(dtype, copy=False).reshape(shape)


def _decode_output(index: int, out: pb.ModelInferRequest.InferRequestedOutputTensor) -> str:
    if not out.name:
        raise InvalidInput(f"outputs[{index}].name", "a non-empty string", "an empty string")
    params = decode_parameters(out.parameters)
    where = f"outputs[{index}] '{out.name}'.parameters"
    if params.get("classification"):
        raise InvalidInput(
            f"{where}.classification",
            "0 (the classification extension is not supported)",
            repr(params["classification"]),
        )
    if "shared_memory_region" in params:
        raise InvalidInput(f"{where}.shared_memory_region", _NO_SHM, "a region")
    return out.name


def encode_infer_response(response: InferenceResponse) -> pb.ModelInferResponse:
    """Encode the data plane's answer, every output in ``raw_output_contents``.

    Raises:
        InferenceFailed: an output array has a dtype with no V2 datatype.
    """
    msg = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version
    )
    if response.id is not None:
        msg.id = response.id
    if response.parameters:
        encode_parameters(response.parameters, msg.parameters)
    raw: list[bytes] = []
    for name, array in response.outputs.items():
        try:
            datatype = datatype_of(array)
        except ValueError as err:
            reason = f"output '{name}': {err}"
            raise InferenceFailed(response.model_name, response.model_version, reason) from None
        msg.outputs.add(name=name, datatype=datatype, shape=array.shape)
        raw.append(array_to_bytes(array))
    msg.raw_output_contents.extend(raw)
    return msg
