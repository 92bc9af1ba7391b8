"""The fallback chain's pieces: why a hop was taken, and the default answer."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import (
    InferdError,
    InferenceFailed,
    ModelNotReady,
    QueueFull,
    RequestTimeout,
)  # fmt: skip
from inferd.resilience.breaker import CircuitOpen
from inferd.types import DATATYPE_TO_DTYPE, InferenceRequest, Signature


def hop_reason(err: InferdError) -> str:
    """The ``reason`` label of a hop, from the error that caused it."""
    if isinstance(err, CircuitOpen):
        return "circuit_open"
    if isinstance(err, RequestTimeout):
        return "timeout"
    if isinstance(err, QueueFull):
        return "overloaded"
    if isinstance(err, ModelNotReady):
        return "unavailable"
    return "error"


def falls_back(err: InferdError) -> bool:
    """Server-side failures fall back; a bad request (4xx) is the caller's to fix."""
    return err.http_status >= 500


def remaining_ms(request: InferenceRequest, start: float) -> float | None:
    """Milliseconds left of the request's deadline (``timeout_ms`` from ``start``), or None.

    gRPC deadlines are already folded into ``timeout_ms`` by the codec.
    """
    if request.timeout_ms is None:
        return None
    return request.timeout_ms - (time.perf_counter() - start) * 1000.0


def rows_of(request: InferenceRequest) -> int:
    """Rows in the request: the first dimension of its first input (1 for scalars)."""
    for array in request.inputs.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1


def default_outputs(
    default: dict[str, Any], config: ModelConfig, signature: Signature | None, rows: int
) -> dict[str, np.ndarray]:
    """One row's default value per output, repeated ``rows`` times, in each output's datatype.

    Raises:
        InferenceFailed: a value does not fit its output's datatype (a model.yaml mistake,
            named by field; the server's fault, not the caller's).
    """
    datatypes = {t.name: t.datatype for t in config.outputs}
    if signature is not None:
        datatypes.update({s.name: s.datatype for s in signature.outputs})
    outputs: dict[str, np.ndarray] = {}
    for name, value in default.items():
        dtype = DATATYPE_TO_DTYPE.get(datatypes.get(name, "FP32"), np.dtype(np.float32))
        try:
            row = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as err:
            raise InferenceFailed(
                config.name, "default",
                f"model.yaml fallback.default.{name}: expected a value of {dtype}, got {value!r}",
            ) from err  # fmt: skip
        outputs[name] = np.broadcast_to(row, (rows, *row.shape)).copy()
    return outputs
