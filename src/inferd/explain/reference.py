"""What an explanation request may say beyond its inputs, checked: the ``explain_*``
parameters, and whether the model's signature is tabular at all.

* ``explain``: true on an inference request answers attributions instead of outputs.
* ``explain_baseline``: reference rows for linear and kernel explanations, one row of
  ``features`` numbers or a list of such rows (at most ``ExplainLimits.max_background``
  are used, the first ones); absent: one all-zeros row.
* ``explain_seed``: the seed of KernelSHAP's coalition sampling (default 0).
* ``explain_output``: the output KernelSHAP explains (default: the first floating-point
  output); naming one forces the kernel method even where an exact one exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from inferd.errors import InvalidInput
from inferd.explain.base import NotExplainable
from inferd.types import Signature, TensorSpec

_FLOATS = ("FP16", "FP32", "FP64")
_NUMERIC = (*_FLOATS, "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


def wants_explanation(parameters: Mapping[str, Any]) -> bool:
    """Whether an inference request asks for attributions (``parameters.explain``).

    Raises:
        InvalidInput: ``explain`` is not a boolean.
    """
    value = parameters.get("explain", False)
    if not isinstance(value, bool):
        raise InvalidInput("parameters.explain", "true or false", repr(value)[:40])
    return value


def tabular_input(model: str, version: str, signature: Signature) -> TensorSpec:
    """The model's one numeric ``[rows, features]`` (or ``[rows]``) input.

    Raises:
        NotExplainable: several inputs, a non-numeric one, or more than two dimensions.
    """
    inputs = signature.inputs
    described = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in inputs)
    if len(inputs) != 1 or inputs[0].datatype not in _NUMERIC or len(inputs[0].shape) > 2:
        raise NotExplainable(
            model, version, "one numeric input of shape [rows, features] (tabular)",
            f"inputs {described or 'none'}",
        )  # fmt: skip
    return inputs[0]


def kernel_output(
    model: str, version: str, signature: Signature, parameters: Mapping[str, Any]
) -> str:
    """The output KernelSHAP explains: ``explain_output`` or the first floating-point one.

    Raises:
        NotExplainable: no floating-point output of shape ``[rows]`` or ``[rows, n]``.
        InvalidInput: ``explain_output`` names no such output.
    """
    usable = [s.name for s in signature.outputs if s.datatype in _FLOATS and len(s.shape) <= 2]
    wanted = parameters.get("explain_output")
    if wanted is not None:
        if wanted not in usable:
            raise InvalidInput(
                "parameters.explain_output", f"one of {usable} (floating-point outputs)",
                repr(wanted)[:80],
            )  # fmt: skip
        return str(wanted)
    if not usable:
        outputs = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in signature.outputs)
        raise NotExplainable(
            model, version,
            "an exact explainer (XGBoost, LightGBM, scikit-learn trees or linear models with "
            "the explain extra) or a floating-point output of shape [rows] or [rows, n] for "
            "KernelSHAP", f"outputs {outputs}",
        )  # fmt: skip
    return usable[0]


def background(parameters: Mapping[str, Any], x: np.ndarray, most: int) -> np.ndarray | None:
    """``explain_baseline`` as ``[rows, features]`` (at most ``most`` rows), or None.

    Raises:
        InvalidInput: not numbers, or rows of another width than ``x``'s.
    """
    raw = parameters.get("explain_baseline")
    if raw is None:
        return None
    width = x.shape[1]
    expected = f"a list of {width} numbers, or a list of such lists"
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("parameters.explain_baseline", expected, "non-numbers") from None
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != width or len(array) == 0:
        got = f"shape {list(array.shape)}"
        raise InvalidInput("parameters.explain_baseline", expected, got)
    if not np.isfinite(array).all():
        raise InvalidInput("parameters.explain_baseline", expected, "NaN or infinity")
    return array[:most].astype(x.dtype, copy=False)


def seed(parameters: Mapping[str, Any]) -> int:
    """``explain_seed``: a non-negative integer (default 0)."""
    value = parameters.get("explain_seed", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("parameters.explain_seed", "a non-negative integer", repr(value)[:40])
    return value
