import numpy as np
import pytest

from inferd.errors import InvalidInput
from inferd.serving.validation import check_declared, validate_request
from inferd.types import InferenceRequest, Signature, TensorSpec

SIG = Signature(
    inputs=(
        TensorSpec("x", "FP32", (-1, 3), allow_nan=False),
        TensorSpec("ids", "INT64", (-1,)),
    ),
    outputs=(TensorSpec("y", "FP32", (-1,)),),
)


def request(typed: bool = True, outputs: list[str] | None = None, **inputs: object):  # type: ignore[no-untyped-def]
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    return InferenceRequest("m", None, arrays, typed=typed, outputs=outputs)


def ok_inputs() -> dict[str, object]:
    return {"x": np.zeros((2, 3), np.float32), "ids": np.array([1, 2], np.int64)}


def test_valid_request_passes_through() -> None:
    checked = validate_request(request(**ok_inputs()), SIG)
    assert set(checked) == {"x", "ids"}


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"x": np.zeros((2, 3), np.float64)}, "input 'x'.datatype", "expected FP32, got FP64"),
        ({"x": np.zeros((2, 4), np.float32)}, "input 'x'.shape[1]", "expected 3"),
        ({"x": np.zeros((6,), np.float32)}, "input 'x'.shape", "rank 2"),
        ({"x": np.full((1, 3), np.nan, np.float32)}, "input 'x'", "no NaN or Inf"),
        ({"x": np.full((1, 3), np.inf, np.float32)}, "input 'x'", "no NaN or Inf"),
        ({"extra": np.zeros(1)}, "inputs", "unknown input 'extra'"),
    ],
)
def test_each_problem_names_the_input(change: dict[str, object], field: str, fragment: str) -> None:
    inputs = {**ok_inputs(), **change}
    with pytest.raises(InvalidInput) as caught:
        validate_request(request(**inputs), SIG)
    assert caught.value.field == field
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        {"x": np.zeros((2, 3), np.float64)},
        {"x": np.zeros((2, 4), np.float32)},
        {"x": np.zeros((6,), np.float32)},
        {"extra": np.zeros(1, np.float32)},
    ],
)
def test_a_declaration_is_refused_as_its_decoded_input_would_be(
    change: dict[str, np.ndarray],
) -> None:
    (name, array), datatype = next(iter(change.items())), {"f": "FP", "i": "INT"}
    declared = f"{datatype[array.dtype.kind]}{array.dtype.itemsize * 8}"
    with pytest.raises(InvalidInput) as decoded:
        validate_request(request(**{**ok_inputs(), **change}), SIG)
    with pytest.raises(InvalidInput) as early:
        check_declared(SIG, name, declared, array.shape)
    assert str(early.value) == str(decoded.value)
    check_declared(SIG, "x", "FP32", [5, 3])  # a valid declaration passes
    check_declared(SIG, "x", None, None)  # /predict declares neither


def test_missing_input_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"missing \['ids'\]"):
        validate_request(request(x=np.zeros((1, 3), np.float32)), SIG)


def test_unknown_requested_output() -> None:
    with pytest.raises(InvalidInput, match="'z'"):
        validate_request(request(outputs=["z"], **ok_inputs()), SIG)


def test_untyped_inputs_are_cast_losslessly() -> None:
    checked = validate_request(request(typed=False, x=[[1, 2, 3]], ids=[4.0]), SIG)
    assert checked["x"].dtype == np.float32
    assert checked["ids"].dtype == np.int64


@pytest.mark.parametrize(
    ("ids", "fragment"),
    [([1.5], "whole numbers"), (["a"], "numbers (INT64)"), ([2.0**70], "values in")],
)
def test_untyped_lossy_casts_are_refused(ids: list[object], fragment: str) -> None:
    with pytest.raises(InvalidInput, match="input 'ids'") as caught:
        validate_request(request(typed=False, x=[[1, 2, 3]], ids=ids), SIG)
    assert fragment in str(caught.value)


def test_untyped_strings_become_bytes() -> None:
    sig = Signature((TensorSpec("s", "BYTES", (-1,)),), ())
    checked = validate_request(request(typed=False, s=["héllo"]), sig)
    assert checked["s"].tolist() == ["héllo".encode()]
