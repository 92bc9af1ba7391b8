"""Tensors, signatures, requests and responses shared by every layer.

Wire formats never appear here: codecs in ``inferd.protocol`` turn bytes into these objects
and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Open Inference Protocol datatype names and the numpy dtype each maps to. BYTES tensors are
# numpy object arrays of ``bytes``.
DATATYPE_TO_DTYPE: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
DATATYPES: tuple[str, ...] = tuple(DATATYPE_TO_DTYPE)

_DTYPE_TO_DATATYPE: dict[np.dtype[Any], str] = {v: k for k, v in DATATYPE_TO_DTYPE.items()}


def datatype_of(array: np.ndarray) -> str:
    """Return the V2 datatype name of a numpy array.

    Raises:
        ValueError: the dtype has no V2 equivalent (e.g. complex numbers).
    """
    dtype = array.dtype
    if dtype.kind in ("U", "S"):
        return "BYTES"
    try:
        return _DTYPE_TO_DATATYPE[dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A named tensor in a model's signature; ``-1`` in ``shape`` is a dynamic dimension.

    The first dimension of a batchable model is the batch dimension.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    allow_nan: bool = True

    @property
    def dtype(self) -> np.dtype[Any]:
        return DATATYPE_TO_DTYPE[self.datatype]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Signature:
    """Inputs and outputs of a model version, in the model's order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None


@dataclass(slots=True)
class BatchInfo:
    """How a request was batched: requests and rows in its batch, its wait and position."""

    batch_size: int = 1
    rows: int = 1
    wait_time_ms: float = 0.0
    position_in_batch: int = 0
    compute_ms: float = 0.0


@dataclass(slots=True)
class InferenceRequest:
    """One decoded request: named arrays plus what the caller asked for.

    Attributes:
        model_name: the model to run.
        model_version: a version number as text, or None for the default version.
        inputs: named arrays; the first dimension is the batch (row) dimension.
        id: the caller's request id, echoed back.
        parameters: free-form request parameters (V2 ``parameters``).
        outputs: names of the outputs to return, or None for all of them.
        typed: False when the wire format carried no datatypes (``/predict``), so the data
            plane casts inputs to the signature's datatypes where that is lossless.
        timeout_ms: total time the caller will wait, or None.
        priority: 0 for the model's default, otherwise 1 is the most urgent.
        routing_key: a stable key (e.g. a user id) for traffic policies.
    """

    model_name: str
    model_version: str | None
    inputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None
    typed: bool = True
    timeout_ms: float | None = None
    priority: int = 0
    routing_key: str | None = None


@dataclass(slots=True)
class InferenceResponse:
    """The answer to one request."""

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    batch: BatchInfo = field(default_factory=BatchInfo)
    latency_ms: float = 0.0
    # Headers an HTTP answer carries besides the protocol's own: the experiment variant or
    # rollout arm that served it (inferd.traffic.route), encoded once per arm.
    headers: tuple[tuple[bytes, bytes], ...] = ()
