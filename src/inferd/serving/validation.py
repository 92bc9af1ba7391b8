"""Check a decoded request against a model version's signature.

Every failure is an :class:`InvalidInput` naming the input, what was expected and what came.
This runs on the event loop for every request, so it only does cheap checks on whole arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inferd.errors import InvalidInput
from inferd.types import InferenceRequest, Signature, TensorSpec, datatype_of

_FLOAT_KINDS = frozenset("fc")


def validate_request(request: InferenceRequest, signature: Signature) -> dict[str, np.ndarray]:
    """Return the request's inputs, cast where the wire format carried no datatype.

    Raises:
        InvalidInput: a missing, unknown or mistyped input, a wrong rank or dimension, a NaN
            where the model forbids it, or an unknown requested output.
    """
    inputs = request.inputs
    if len(inputs) != len(signature.inputs) or any(s.name not in inputs for s in signature.inputs):
        _explain_names(inputs, signature)
    checked: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        array = inputs[spec.name]
        if not request.typed:
            array = _cast(spec, array)
        elif array.dtype != spec.dtype:
            raise InvalidInput(f"input '{spec.name}'.datatype", spec.datatype, _datatype(array))
        _check_shape(spec, array.shape)
        if not spec.allow_nan and array.dtype.kind in _FLOAT_KINDS and not np.isfinite(array).all():
            raise InvalidInput(
                f"input '{spec.name}'", "finite values (no NaN or Inf)", "NaN or Inf"
            )
        checked[spec.name] = array
    if request.outputs is not None:
        known = [s.name for s in signature.outputs]
        for name in request.outputs:
            if name not in known:
                raise InvalidInput("outputs", f"names among {known}", f"'{name}'")
    return checked


def check_declared(
    signature: Signature, name: str, datatype: str | None, shape: Sequence[int] | None
) -> None:
    """Check one input from its declared datatype and shape, before its data is parsed.

    Raises:
        InvalidInput: as :func:`validate_request` would for the decoded input.
    """
    spec = next((s for s in signature.inputs if s.name == name), None)
    if spec is None:
        expected = [s.name for s in signature.inputs]
        raise InvalidInput("inputs", f"names among {expected}", f"unknown input '{name}'")
    if datatype is not None and datatype != spec.datatype:
        raise InvalidInput(f"input '{name}'.datatype", spec.datatype, datatype)
    if shape is not None:
        _check_shape(spec, tuple(shape))


def _explain_names(inputs: dict[str, np.ndarray], signature: Signature) -> None:
    expected = [s.name for s in signature.inputs]
    for name in inputs:
        if name not in expected:
            raise InvalidInput("inputs", f"names among {expected}", f"unknown input '{name}'")
    missing = [n for n in expected if n not in inputs]
    raise InvalidInput("inputs", f"every input of the model {expected}", f"missing {missing}")


def _check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    if len(shape) != len(spec.shape):
        raise InvalidInput(
            f"input '{spec.name}'.shape",
            f"rank {len(spec.shape)} like {list(spec.shape)}",
            f"{list(shape)} (rank {len(shape)})",
        )
    for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
        if want != -1 and want != got:
            raise InvalidInput(
                f"input '{spec.name}'.shape[{axis}]",
                f"{want} (model shape {list(spec.shape)})",
                f"{got} (request shape {list(shape)})",
            )


def _cast(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """Cast an untyped array to the spec's dtype when no information is lost."""
    target = spec.dtype
    if array.dtype == target:
        return array
    if spec.datatype == "BYTES":
        if array.dtype.kind in "US":
            return np.char.encode(array.astype(np.str_), "utf-8").astype(np.object_)
        raise InvalidInput(f"input '{spec.name}'", "strings (BYTES)", _datatype(array))
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"input '{spec.name}'", f"numbers ({spec.datatype})", _datatype(array))
    fractional = array.dtype.kind == "f" and target.kind in "iub"
    if fractional and not np.array_equal(array, np.trunc(array)):
        raise InvalidInput(
            f"input '{spec.name}'", f"whole numbers ({spec.datatype})", "fractional values"
        )
    if target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInput(
                f"input '{spec.name}'",
                f"values in [{info.min}, {info.max}] ({spec.datatype})",
                f"values in [{array.min()}, {array.max()}]",
            )
    if target.kind != "f":
        return array.astype(target)
    with np.errstate(over="ignore"):
        cast = array.astype(target)
    if (np.isinf(cast) != np.isinf(array)).any():
        limit = float(np.finfo(target).max)
        raise InvalidInput(
            f"input '{spec.name}'",
            f"values within ±{limit:.3g} ({spec.datatype})",
            "values out of that range",
        )
    return cast


def _datatype(array: np.ndarray) -> str:
    try:
        return datatype_of(array)
    except ValueError:
        return str(array.dtype)
