"""The shared signature helpers: merging the artifact's signature with model.yaml's."""

from __future__ import annotations

import numpy as np
import pytest

from inferd.config import TensorConfig, parse_model_config
from inferd.runtimes._signature import (
    SignatureProblem,
    cast_outputs,
    datatype_for,
    declared,
    merge,
    merge_shape,
)
from inferd.types import TensorSpec

X = TensorSpec("x", "FP32", (-1, 4))
Y = TensorSpec("output__0", "FP32", (-1,))


def tensor(name: str, datatype: str, shape: list[int], **extra: object) -> TensorConfig:
    return TensorConfig.model_validate(
        {"name": name, "datatype": datatype, "shape": shape, **extra}
    )


def test_no_declaration_keeps_the_artifacts() -> None:
    assert merge([X], [], "input") == (X,)


def test_declaration_refines_shape_and_allow_nan() -> None:
    (merged,) = merge([X], [tensor("x", "FP32", [8, -1], allow_nan=False)], "input")
    assert merged == TensorSpec("x", "FP32", (8, 4), allow_nan=False)


def test_by_position_takes_the_declared_names() -> None:
    (merged,) = merge([Y], [tensor("y", "FP32", [-1])], "output", by_position=True)
    assert merged.name == "y"
    with pytest.raises(SignatureProblem, match="outputs: expected 1 from the artifact, got 2"):
        merge(
            [Y], [tensor("a", "FP32", [-1]), tensor("b", "FP32", [-1])], "output", by_position=True
        )


@pytest.mark.parametrize(
    ("declared_tensor", "fragment"),
    [
        (tensor("z", "FP32", [-1, 4]), "inputs: expected names ['x'] from the artifact, got ['z']"),
        (tensor("x", "FP16", [-1, 4]), "input 'x' datatype: expected FP32 from the artifact"),
        (tensor("x", "FP32", [-1, 5]), "input 'x' shape: expected [-1, 4] from the artifact"),
        (tensor("x", "FP32", [-1]), "got [-1] in model.yaml"),
    ],
)
def test_disagreements_name_tensor_expected_and_got(
    declared_tensor: TensorConfig, fragment: str
) -> None:
    with pytest.raises(SignatureProblem) as info:
        merge([X], [declared_tensor], "input")
    assert fragment in str(info.value)


def test_merge_shape() -> None:
    assert merge_shape((-1, 3), (5, -1)) == (5, 3)
    assert merge_shape((), (2,)) == (2,)
    assert merge_shape((2,), (3,)) is None
    assert merge_shape((2,), (2, 1)) is None


def test_declared_needs_inputs_and_outputs() -> None:
    config = parse_model_config({"platform": "python"}, "test", "m")
    with pytest.raises(SignatureProblem, match="must declare inputs and outputs"):
        declared(config, "a python model")


def test_cast_outputs_follows_the_signature() -> None:
    specs = [TensorSpec("a", "FP32", (-1,)), TensorSpec("b", "BYTES", (-1,))]
    out = cast_outputs({"a": [1.5, 2.0], "b": np.array(["x", "y"]), "extra": [0]}, specs)
    assert list(out) == ["a", "b"]
    assert out["a"].dtype == np.float32
    assert out["b"].dtype == np.object_
    assert out["b"].tolist() == [b"x", b"y"]
    assert cast_outputs({"b": np.array([1, 2])}, specs[1:])["b"].tolist() == [b"1", b"2"]


def test_datatype_for() -> None:
    assert datatype_for(np.float64, "x") == "FP64"
    assert datatype_for(np.dtype("<U3"), "x") == "BYTES"
    with pytest.raises(SignatureProblem, match="output 'z' has type complex64"):
        datatype_for(np.complex64, "output 'z'")
