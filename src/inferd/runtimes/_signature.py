"""Signatures shared by the runtimes: the artifact's, model.yaml's, and the two merged.

Where a format stores a signature (ONNX, torch.export, TensorFlow SavedModel, the tree boosters'
feature counts) it is read from the artifact and ``model.yaml`` may refine it: a fixed size
where the artifact has ``-1``, ``allow_nan``, other output names. Where the format has none
(TorchScript tensor types, custom Python) ``model.yaml`` must declare it. A disagreement is a
:class:`SignatureProblem`, which the runtime turns into a load error naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from inferd.config import ModelConfig, TensorConfig
from inferd.types import DATATYPE_TO_DTYPE, Signature, TensorSpec

_DTYPE_TO_DATATYPE = {dtype: name for name, dtype in DATATYPE_TO_DTYPE.items()}


class SignatureProblem(Exception):
    """The artifact and model.yaml disagree, or the artifact has an unservable tensor."""


def datatype_for(dtype: Any, where: str) -> str:
    """The V2 datatype of a numpy dtype (or anything ``np.dtype`` accepts).

    Raises:
        SignatureProblem: no V2 datatype holds it (complex, bfloat16, ...).
    """
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is not None and resolved.kind in "US":
        return "BYTES"
    datatype = _DTYPE_TO_DATATYPE.get(resolved) if resolved is not None else None
    if datatype is None:
        shown = resolved if resolved is not None else dtype
        raise SignatureProblem(f"{where} has type {shown}, which inferd cannot serve")
    return datatype


def declared(config: ModelConfig, what: str) -> Signature:
    """The signature model.yaml declares, for formats whose artifact has none.

    Raises:
        SignatureProblem: inputs or outputs are missing from model.yaml.
    """
    missing = [kind for kind in ("inputs", "outputs") if not getattr(config, kind)]
    if missing:
        raise SignatureProblem(
            f"{what} carries no tensor signature, so model.yaml must declare "
            f"{' and '.join(missing)} (name, datatype, shape of each)"
        )
    return Signature(
        tuple(t.spec() for t in config.inputs), tuple(t.spec() for t in config.outputs)
    )


def merge(
    artifact: Sequence[TensorSpec],
    declared: Sequence[TensorConfig],
    kind: str,
    *,
    by_position: bool = False,
) -> tuple[TensorSpec, ...]:
    """Merge the artifact's tensors with model.yaml's; model.yaml wins where more specific.

    Args:
        artifact: the tensors the artifact declares, in order.
        declared: model.yaml's ``inputs`` or ``outputs`` (empty: take the artifact's).
        kind: ``input`` or ``output``, for messages.
        by_position: pair tensors by order and take model.yaml's names (for formats whose
            names are generated, like torch.export's outputs); otherwise pair them by name.

    Raises:
        SignatureProblem: names, count, datatypes or shapes disagree.
    """
    if not declared:
        return tuple(artifact)
    if by_position:
        if len(artifact) != len(declared):
            raise SignatureProblem(
                f"{kind}s: expected {len(artifact)} from the artifact, got {len(declared)} "
                "in model.yaml; fix model.yaml or leave the tensors out to use the artifact's"
            )
        pairs = [(a, t.spec()) for a, t in zip(artifact, declared, strict=True)]
        return tuple(merge_one(a, d, kind, rename=True) for a, d in pairs)
    by_name = {spec.name: spec for spec in artifact}
    names = [tensor.name for tensor in declared]
    if sorted(by_name) != sorted(names):
        raise SignatureProblem(
            f"{kind}s: expected names {sorted(by_name)} from the artifact, got {sorted(names)} "
            "in model.yaml; fix model.yaml or leave the tensors out to use the artifact's"
        )
    return tuple(merge_one(by_name[t.name], t.spec(), kind) for t in declared)


def merge_one(
    artifact: TensorSpec, declared: TensorSpec, kind: str, *, rename: bool = False
) -> TensorSpec:
    """One tensor of :func:`merge`. Raises SignatureProblem."""
    where = f"{kind} '{declared.name if rename else artifact.name}'"
    if artifact.datatype != declared.datatype:
        raise SignatureProblem(
            f"{where} datatype: expected {artifact.datatype} from the artifact, "
            f"got {declared.datatype} in model.yaml"
        )
    shape = merge_shape(artifact.shape, declared.shape)
    if shape is None:
        raise SignatureProblem(
            f"{where} shape: expected {list(artifact.shape)} from the artifact, "
            f"got {list(declared.shape)} in model.yaml"
        )
    name = declared.name if rename else artifact.name
    return TensorSpec(name, artifact.datatype, shape, declared.allow_nan)


def merge_shape(artifact: tuple[int, ...], declared: tuple[int, ...]) -> tuple[int, ...] | None:
    """The more specific of two shapes, or None when they disagree."""
    if not artifact:
        # Some formats store no shape at all (onnxruntime reports []); trust model.yaml.
        return declared
    pairs = list(zip(artifact, declared, strict=False))
    if len(artifact) != len(declared) or any(a != d and -1 not in (a, d) for a, d in pairs):
        return None
    # Keep whichever side is more specific: a fixed size beats -1.
    return tuple(d if a == -1 else a for a, d in pairs)


def cast_outputs(
    outputs: Mapping[str, Any], specs: Sequence[TensorSpec]
) -> dict[str, np.ndarray[Any, Any]]:
    """Outputs as numpy arrays of the signature's datatypes, in its order.

    Frameworks compute in their own precision (scikit-learn in float64, say); the signature
    is what clients were promised, so each output is cast to it.
    """
    result: dict[str, np.ndarray[Any, Any]] = {}
    for spec in specs:
        array = np.asarray(outputs[spec.name])
        if spec.datatype == "BYTES":
            if array.dtype != np.object_ or any(isinstance(v, str) for v in array.flat):
                array = _as_bytes(array)
        elif array.dtype != spec.dtype:
            array = array.astype(spec.dtype)
        result[spec.name] = array
    return result


def _as_bytes(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    values = array.ravel().tolist()
    if array.dtype.kind in "OUS":
        items = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    else:  # numeric class labels served as text
        items = [str(v).encode("utf-8") for v in values]
    out = np.empty(len(items), dtype=np.object_)
    out[:] = items
    return out.reshape(array.shape)
