"""The cache key of a request: a digest of everything that decides its answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from inferd.types import InferenceRequest

# Request parameters that schedule or encode a request without changing its answer.
NEUTRAL_PARAMETERS = frozenset(
    {"timeout", "timeout_ms", "priority", "binary_data_output", "binary_data", "headers",
     "sequence_id", "trace_id", "request_id", "traffic_class"}
)  # fmt: skip


def request_key(model: str, version: str, digest: str, request: InferenceRequest) -> bytes:
    """Digest (BLAKE2b, 16 bytes) of the model version and the request's canonical inputs.

    Inputs are taken in name order as (name, datatype, shape, bytes); requested outputs and
    every parameter not in :data:`NEUTRAL_PARAMETERS` are part of the key, so two requests
    share a key only when the version must give them the same answer.

    Args:
        model: the model name.
        version: the version label.
        digest: the version's artifact digest, so a re-registered label never matches.
        request: the decoded request.
    """
    h = hashlib.blake2b(digest_size=16)
    _field(h, f"{model}\0{version}\0{digest}\0{int(request.typed)}".encode())
    for name in sorted(request.inputs):
        array = np.asarray(request.inputs[name])
        _field(h, f"{name}\0{array.dtype.str}\0{array.shape}".encode())
        if array.dtype == object:
            for item in array.reshape(-1):
                raw = item if isinstance(item, bytes) else str(item).encode()
                _field(h, raw)
        else:
            _field(h, np.ascontiguousarray(array).data)
    _field(h, json.dumps(request.outputs).encode())
    params = {k: v for k, v in request.parameters.items() if k not in NEUTRAL_PARAMETERS}
    _field(h, json.dumps(params, sort_keys=True, default=_text).encode())
    return h.digest()


def _field(h: Any, raw: bytes | memoryview) -> None:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") never collide.
    size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
    h.update(size.to_bytes(8, "little"))
    h.update(raw)


def _text(value: Any) -> str:
    return repr(value)
