"""HTTP calls of the SDK, without I/O: what to send and how to read the answer.

Each method returns an :class:`HttpCall`; the sync and async clients send it with httpx.
Inference uses the V2 binary tensor extension unless JSON is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np
import orjson

from inferd.client._types import InferResult
from inferd.protocol._tensors import array_from_bytes, wire_tensor
from inferd.types import DATATYPE_TO_DTYPE, datatype_of

T = TypeVar("T")
HEADER_LENGTH = "inference-header-content-length"
_OK = frozenset({200})


@dataclass(frozen=True, slots=True)
class HttpCall(Generic[T]):
    """One HTTP request and the function that reads a successful answer.

    ``accept`` lists the statuses that are answers rather than errors (e.g. 503 for
    readiness); only the others raise and may be retried.
    """

    method: str
    path: str
    parse: Callable[[int, bytes, Mapping[str, str]], T]
    body: bytes | None = None
    headers: Mapping[str, str] | None = None
    accept: frozenset[int] = _OK


def _json(status: int, body: bytes, headers: Mapping[str, str]) -> Any:
    return orjson.loads(body) if body else {}


def _model_path(model: str, version: str | None) -> str:
    path = f"/v2/models/{quote(model, safe='')}"
    return path if version is None else f"{path}/versions/{quote(version, safe='')}"


class HttpProtocol:
    """Builds the V2 REST calls.

    Args:
        binary: send and receive tensors with the binary extension (else JSON).
    """

    def __init__(self, binary: bool = True) -> None:
        self.binary = binary

    def live(self) -> HttpCall[bool]:
        return HttpCall("GET", "/v2/health/live", lambda s, b, h: s == 200, accept=_OK | {503})

    def ready(self) -> HttpCall[bool]:
        return HttpCall("GET", "/v2/health/ready", lambda s, b, h: s == 200, accept=_OK | {503})

    def server_metadata(self) -> HttpCall[dict[str, Any]]:
        return HttpCall("GET", "/v2", _json)

    def model_metadata(self, model: str, version: str | None) -> HttpCall[dict[str, Any]]:
        return HttpCall("GET", _model_path(model, version), _json)

    def model_ready(self, model: str, version: str | None) -> HttpCall[bool]:
        path = _model_path(model, version) + "/ready"
        return HttpCall("GET", path, lambda s, b, h: s == 200, accept=_OK | {404, 503})

    def model_config(self, model: str, version: str | None) -> HttpCall[dict[str, Any]]:
        return HttpCall("GET", _model_path(model, version) + "/config", _json)

    def statistics(self, model: str | None, version: str | None) -> HttpCall[dict[str, Any]]:
        path = "/v2/models" if model is None else _model_path(model, version)
        return HttpCall("GET", path + "/stats", _json)

    def repository_index(self) -> HttpCall[list[dict[str, Any]]]:
        return HttpCall("POST", "/v2/repository/index", _json)

    def load_model(self, model: str) -> HttpCall[None]:
        path = f"/v2/repository/models/{quote(model, safe='')}/load"
        return HttpCall("POST", path, lambda s, b, h: None)

    def unload_model(self, model: str) -> HttpCall[None]:
        path = f"/v2/repository/models/{quote(model, safe='')}/unload"
        return HttpCall("POST", path, lambda s, b, h: None)

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        version: str | None,
        outputs: Sequence[str] | None,
        request_id: str | None,
        parameters: Mapping[str, Any] | None,
    ) -> HttpCall[InferResult]:
        """A V2 inference request, binary tensors both ways unless ``binary`` is off."""
        chunks: list[bytes] = []
        tensors = [self._input(name, np.asarray(array), chunks) for name, array in inputs.items()]
        doc: dict[str, Any] = {"inputs": tensors}
        if request_id is not None:
            doc["id"] = request_id
        params = dict(parameters or {})
        if outputs is not None:
            flag = {"binary_data": self.binary}
            doc["outputs"] = [{"name": name, "parameters": flag} for name in outputs]
        elif self.binary:
            params["binary_data_output"] = True
        if params:
            doc["parameters"] = params
        header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"content-type": "application/json"}
        if chunks:
            headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
        path = _model_path(model, version) + "/infer"
        return HttpCall("POST", path, decode_infer_response, b"".join([header, *chunks]), headers)

    def _input(self, name: str, array: np.ndarray, chunks: list[bytes]) -> dict[str, Any]:
        return wire_tensor(name, datatype_of(array), array, self.binary, chunks)


def decode_infer_response(status: int, body: bytes, headers: Mapping[str, str]) -> InferResult:
    """Read a V2 inference response, JSON or with binary outputs."""
    length = headers.get(HEADER_LENGTH)
    end = len(body) if length is None else int(length)
    doc = orjson.loads(body[:end])
    view = memoryview(body)
    outputs: dict[str, np.ndarray] = {}
    for tensor in doc.get("outputs", []):
        name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is not None:
            outputs[name] = array_from_bytes(name, datatype, shape, view[end : end + size])
            end += size
        elif datatype == "BYTES":
            items = [s.encode("utf-8") if isinstance(s, str) else s for s in tensor["data"]]
            array = np.empty(len(items), dtype=np.object_)
            array[:] = items
            outputs[name] = array.reshape(shape)
        else:
            dtype = DATATYPE_TO_DTYPE[datatype]
            outputs[name] = np.asarray(tensor["data"], dtype=dtype).reshape(shape)
    return InferResult(
        model_name=doc.get("model_name", ""),
        model_version=doc.get("model_version", ""),
        outputs=outputs,
        id=doc.get("id"),
        parameters=doc.get("parameters", {}),
    )
