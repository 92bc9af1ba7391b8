"""XGBoost boosters saved as JSON (``model.json``) or UBJSON (``model.ubj``).

    Runtime (ABC)
    └── MeasuredRuntime
        └── TabularRuntime
            └── XGBoostRuntime

Outputs follow the booster's objective. Classifiers (``binary:logistic``, ``binary:logitraw``,
``multi:softprob``, ``multi:softmax``) give ``predict`` (the class index, INT64),
``predict_proba`` (``[-1, n_classes]``, like ``XGBClassifier.predict_proba``) and ``margin``
(the untransformed score). Other objectives give ``predict`` and ``margin``.

xgboost is an optional extra (``inferd[xgboost]``), imported on load.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.runtimes._device import choose_device, visible_free_bytes
from inferd.runtimes._tabular import TabularRuntime
from inferd.runtimes.base import import_framework

_PARAMETERS = ("intra_op_threads",)
_SUFFIXES = (".json", ".ubj")
_CLASSIFIERS = ("binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax")


class XGBoostRuntime(TabularRuntime):
    """A native ``xgboost.Booster``; the input defaults to ``x``, FP32, ``[-1, n_features]``.

    ``parameters.intra_op_threads`` sets the booster's ``nthread`` (default 0: all cores).
    ``device: auto`` predicts on the GPU with the most free memory when xgboost was built with
    CUDA and one is present.
    """

    framework = "XGBoost"

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._xgb: Any = None
        self._objective = ""
        self._threads = 0
        self._inplace = True

    def _prepare(self) -> None:
        self._xgb = import_framework("xgboost", "xgboost", "xgboost")
        self.check_parameters(_PARAMETERS)
        self._threads = self.int_parameter("intra_op_threads", 0)

    def _place(self) -> str:
        if self.requested_device == "cpu":
            return "cpu"
        cuda_build = bool(self._xgb.build_info().get("USE_CUDA"))
        return choose_device(self, visible_free_bytes() if cuda_build else [], "XGBoost")

    def _native_dtype(self) -> np.dtype[Any]:
        return np.dtype(np.float32)  # XGBoost compares features in float32

    def _read(self) -> Any:
        if self.artifact.suffix not in _SUFFIXES:
            raise self.load_error(
                f"{self.artifact}: expected model.json or model.ubj (Booster.save_model)"
            )
        if self.artifact.suffix == ".ubj":
            problem = ubjson_problem(self.artifact.read_bytes())
            if problem is not None:
                raise self.load_error(f"{self.artifact}: {problem}")
        booster = self._xgb.Booster()
        try:
            booster.load_model(str(self.artifact))
            config = json.loads(booster.save_config())
        except self._xgb.core.XGBoostError as err:
            detail = str(err).strip().splitlines()
            # The first line is "[time] file:line: what"; keep what.
            what = detail[0].split(": ", 1)[-1][:300] if detail else ""
            raise self.load_error(
                f"{self.artifact}: not a loadable XGBoost model ({what}); check that it was "
                "copied completely and saved with save_model as JSON or UBJSON"
            ) from err
        self._objective = str(config["learner"]["objective"]["name"])
        # gblinear has no in-place prediction; a GPU booster would warn about host arrays.
        booster_kind = config["learner"]["gradient_booster"]["name"]
        self._inplace = self.device == "cpu" and booster_kind != "gblinear"
        params = {"device": self.device}
        if self._threads:
            params["nthread"] = str(self._threads)
        booster.set_param(params)
        return booster

    def _n_features(self, model: Any) -> int | None:
        return int(model.num_features())

    def _output_names(self, model: Any) -> list[str]:
        if self._objective in _CLASSIFIERS:
            return ["predict", "predict_proba", "margin"]
        return ["predict", "margin"]

    def predict(self, model: Any, x: np.ndarray, wanted: set[str]) -> dict[str, np.ndarray]:
        """Class, probabilities and margin, from as few booster calls as possible."""
        if self._inplace:

            def value(margin: bool) -> np.ndarray:
                kind = "margin" if margin else "value"
                return np.asarray(model.inplace_predict(x, predict_type=kind))
        else:
            matrix = self._xgb.DMatrix(x)

            def value(margin: bool) -> np.ndarray:
                return np.asarray(model.predict(matrix, output_margin=margin))

        out: dict[str, np.ndarray] = {}
        if "margin" in wanted:
            out["margin"] = value(True)
        if self._objective not in _CLASSIFIERS:
            if "predict" in wanted:
                out["predict"] = value(False)
            return out
        if wanted & {"predict", "predict_proba"}:
            proba = _probabilities(self._objective, value)
            out["predict_proba"] = proba
            out["predict"] = np.argmax(proba, axis=1).astype(np.int64)
        return out


def _probabilities(objective: str, value: Callable[[bool], np.ndarray]) -> np.ndarray:
    if objective == "multi:softprob":
        return np.asarray(value(False))
    if objective == "multi:softmax":  # its "value" is the class; probabilities need margins
        margin = value(True).astype(np.float64)
        exp = np.exp(margin - margin.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)
    p: np.ndarray = value(False)
    if objective == "binary:logitraw":
        p = (1.0 / (1.0 + np.exp(-p.astype(np.float64)))).astype(np.float32)
    # XGBClassifier.predict_proba's layout for binary models: [1 - p, p].
    return np.vstack((1 - p, p)).T


# UBJSON value markers -> payload size in bytes (fixed-size types).
_UBJ_SIZES = {b"Z": 0, b"N": 0, b"T": 0, b"F": 0, b"i": 1, b"U": 1, b"C": 1, b"I": 2,
              b"l": 4, b"d": 4, b"L": 8, b"D": 8}  # fmt: skip
_UBJ_INTS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}


class _Truncated(Exception):
    pass


def ubjson_problem(data: bytes) -> str | None:
    """What is structurally wrong with a UBJSON document, or None.

    XGBoost's UBJSON reader trusts lengths and counts and reads past the end of a truncated
    file (a segmentation fault that takes the server down), so the structure is walked here
    first: every value, length and count must fit in the file.
    """
    try:
        end = _ubj_value(data, 0, None)
    except _Truncated as err:
        return f"the UBJSON data is truncated or damaged ({err})"
    except RecursionError:
        return "the UBJSON data nests too deeply"
    if end != len(data):
        return f"{len(data) - end} stray bytes after the UBJSON document"
    return None


def _ubj_take(data: bytes, position: int, size: int) -> int:
    if size < 0 or position + size > len(data):
        raise _Truncated(f"needs {size} bytes at offset {position}, the file has {len(data)}")
    return position + size


def _ubj_int(data: bytes, position: int) -> tuple[int, int]:
    marker = data[position : position + 1]
    if marker not in _UBJ_INTS:
        raise _Truncated(f"expected a length at offset {position}, got {marker!r}")
    end = _ubj_take(data, position + 1, _UBJ_SIZES[marker])
    return int(struct.unpack(_UBJ_INTS[marker], data[position + 1 : end])[0]), end


def _ubj_value(data: bytes, position: int, marker: bytes | None) -> int:
    if marker is None:
        position = _ubj_take(data, position, 1)
        marker = data[position - 1 : position]
    if marker in _UBJ_SIZES:
        return _ubj_take(data, position, _UBJ_SIZES[marker])
    if marker in (b"S", b"H"):
        length, position = _ubj_int(data, position)
        return _ubj_take(data, position, length)
    if marker in (b"[", b"{"):
        return _ubj_container(data, position, marker == b"{")
    raise _Truncated(f"unknown marker {marker!r} at offset {position - 1}")


def _ubj_container(data: bytes, position: int, is_object: bool) -> int:
    item_type: bytes | None = None
    if data[position : position + 1] == b"$":
        item_type = data[position + 1 : position + 2]
        position += 2
    count: int | None = None
    if data[position : position + 1] == b"#":
        count, position = _ubj_int(data, position + 1)
    elif item_type is not None:
        raise _Truncated(f"a typed container without a count at offset {position}")
    if count is not None and item_type in _UBJ_SIZES and not is_object:
        return _ubj_take(data, position, count * _UBJ_SIZES[item_type])
    closing = b"}" if is_object else b"]"
    done = 0
    while True:
        if count is not None and done == count:
            return position
        if count is None and data[position : position + 1] == closing:
            return position + 1
        if is_object:
            length, position = _ubj_int(data, position)
            position = _ubj_take(data, position, length)
        position = _ubj_value(data, position, item_type)
        done += 1
