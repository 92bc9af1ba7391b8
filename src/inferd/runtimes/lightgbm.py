"""LightGBM boosters saved as text (``model.txt``, ``Booster.save_model``).

    Runtime (ABC)
    └── MeasuredRuntime
        └── TabularRuntime
            └── LightGBMRuntime

Classifiers (``binary``, ``multiclass``, ``multiclassova``) give ``predict`` (the class index,
INT64), ``predict_proba`` (``[-1, n_classes]``, like ``LGBMClassifier.predict_proba``) and
``margin`` (the raw score); other objectives give ``predict`` and ``margin``.

LightGBM's parser aborts the whole process on some truncated files (it throws inside a
parallel region), so the file's structure is checked in Python before LightGBM sees it.

lightgbm is an optional extra (``inferd[lightgbm]``), imported on load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.runtimes._tabular import TabularRuntime
from inferd.runtimes.base import import_framework

_PARAMETERS = ("intra_op_threads",)
_CLASSIFIERS = ("binary", "multiclass", "multiclassova")
_TREE_SIZES = re.compile(rb"^tree_sizes=(.*)$", re.MULTILINE)
_OBJECTIVE = re.compile(rb"^objective=(\S+)", re.MULTILINE)


class LightGBMRuntime(TabularRuntime):
    """A native ``lightgbm.Booster``; the input defaults to ``x``, FP64, ``[-1, n_features]``.

    ``parameters.intra_op_threads`` sets ``num_threads`` of each prediction (default 0:
    LightGBM's OpenMP default). LightGBM predicts on the CPU.
    """

    framework = "LightGBM"
    # Each predict builds a Predictor that writes the booster's prediction state, racing other
    # threads' calls on a shared booster (lightgbm-org/LightGBM#6142, open): a copy each.
    thread_safe = False

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._lgb: Any = None
        self._objective = ""
        self._predict_args: dict[str, Any] = {}

    def _prepare(self) -> None:
        self._lgb = import_framework("lightgbm", "lightgbm", "lightgbm")
        self.check_parameters(_PARAMETERS)
        threads = self.int_parameter("intra_op_threads", 0)
        self._predict_args = {"num_threads": threads} if threads else {}

    def _read(self) -> Any:
        if self.artifact.suffix != ".txt":
            raise self.load_error(f"{self.artifact}: expected model.txt (Booster.save_model)")
        data = self.artifact.read_bytes()
        problem = text_model_problem(data)
        if problem is not None:
            raise self.load_error(f"{self.artifact}: {problem}")
        try:
            booster = self._lgb.Booster(model_str=data.decode("utf-8"))
        except (self._lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as err:
            raise self.load_error(
                f"{self.artifact}: not a loadable LightGBM model ({str(err).strip()[:300]}); "
                "check that it was copied completely"
            ) from err
        objective = _OBJECTIVE.search(data)
        self._objective = objective.group(1).decode() if objective else ""
        return booster

    def _n_features(self, model: Any) -> int | None:
        return int(model.num_feature())

    def _output_names(self, model: Any) -> list[str]:
        if self._objective in _CLASSIFIERS:
            return ["predict", "predict_proba", "margin"]
        return ["predict", "margin"]

    def predict(self, model: Any, x: np.ndarray, wanted: set[str]) -> dict[str, np.ndarray]:
        """Class, probabilities and margin of the booster."""
        out: dict[str, np.ndarray] = {}
        if "margin" in wanted:
            out["margin"] = np.asarray(model.predict(x, raw_score=True, **self._predict_args))
        if not wanted & {"predict", "predict_proba"}:
            return out
        value = np.asarray(model.predict(x, **self._predict_args))
        if self._objective not in _CLASSIFIERS:
            out["predict"] = value
            return out
        # LGBMClassifier.predict_proba's layout for binary models: [1 - p, p].
        proba = np.vstack((1.0 - value, value)).T if value.ndim == 1 else value
        out["predict_proba"] = proba
        out["predict"] = np.argmax(proba, axis=1).astype(np.int64)
        return out


def text_model_problem(data: bytes) -> str | None:
    """What is structurally wrong with a LightGBM text model, or None.

    Checks the header, that every tree sits where ``tree_sizes`` says, and the closing
    ``end of trees`` line: the truncations that make LightGBM abort the process.
    """
    if not data.startswith(b"tree\n"):
        return (
            "not a LightGBM text model (it should start with a 'tree' line); save it with "
            "Booster.save_model"
        )
    start = data.find(b"\nTree=0\n")
    if start < 0:
        return "no trees found; the file is truncated or holds no model"
    position = start + 1
    sizes = _TREE_SIZES.search(data, 0, start)
    if sizes is not None:
        try:
            lengths = [int(v) for v in sizes.group(1).split()]
        except ValueError:
            return "the tree_sizes line is not a list of numbers; the file is damaged"
        for index, length in enumerate(lengths):
            if not data.startswith(b"Tree=%d\n" % index, position):
                return f"tree {index} is not where tree_sizes puts it; the file is truncated"
            position += length
        if not data.startswith(b"end of trees", position):
            return "no 'end of trees' line after the last tree; the file is truncated"
    else:
        position = data.find(b"\nend of trees", position)
        if position < 0:
            return "no 'end of trees' line; the file is truncated"
    # A parameters section cut short crashes the parser too.
    parameters = data.find(b"\nparameters:\n", position)
    if parameters >= 0 and data.find(b"\nend of parameters", parameters) < 0:
        return "the parameters section has no 'end of parameters' line; the file is truncated"
    return None
