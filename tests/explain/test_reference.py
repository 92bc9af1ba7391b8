"""The ``explain_*`` parameters and the tabular check (inferd.explain.reference)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from inferd.errors import InvalidInput
from inferd.explain.base import NotExplainable
from inferd.explain.reference import background, kernel_output, seed, wants_explanation
from inferd.types import Signature, TensorSpec

X = np.zeros((2, 3), dtype=np.float32)


def test_a_baseline_is_one_row_or_several_cut_to_the_limit() -> None:
    one = background({"explain_baseline": [1, 2, 3]}, X, 4)
    assert one is not None
    assert one.dtype == np.float32
    np.testing.assert_array_equal(one, [[1, 2, 3]])
    many = background({"explain_baseline": [[i, i, i] for i in range(10)]}, X, 4)
    assert many is not None
    assert many.shape == (4, 3)
    assert background({}, X, 4) is None


@pytest.mark.parametrize(
    ("raw", "got"),
    [([1, 2], "shape [1, 2]"), ([["a", 1, 2]], "non-numbers"), ([[1, 2, float("nan")]], "NaN"),
     ([], "shape [1, 0]")],
)  # fmt: skip
def test_a_bad_baseline_names_the_parameter(raw: object, got: str) -> None:
    with pytest.raises(
        InvalidInput, match=f"parameters.explain_baseline: expected .*got {re.escape(got)}"
    ):
        background({"explain_baseline": raw}, X, 4)


def test_seed_and_flag_are_checked() -> None:
    assert seed({}) == 0
    assert seed({"explain_seed": 9}) == 9
    for bad in (True, 1.5, "2", -3):
        with pytest.raises(InvalidInput, match=r"parameters\.explain_seed"):
            seed({"explain_seed": bad})
    assert wants_explanation({"explain": True}) is True
    assert wants_explanation({}) is False
    with pytest.raises(InvalidInput, match=r"parameters\.explain: expected true or false"):
        wants_explanation({"explain": 1})


def test_a_model_with_no_floating_point_output_has_no_fallback() -> None:
    labels = Signature((TensorSpec("x", "FP32", (-1, 3)),), (TensorSpec("label", "INT64", (-1,)),))
    with pytest.raises(NotExplainable) as info:
        kernel_output("m", "2", labels, {})
    message = str(info.value)
    assert message.startswith("explain m version 2: expected an exact explainer")
    assert message.endswith("got outputs label INT64 [-1]")
    assert info.value.http_status == 400


def test_the_kernel_explains_the_first_floating_output_or_the_one_named() -> None:
    outputs = (TensorSpec("label", "INT64", (-1,)), TensorSpec("p", "FP32", (-1, 2)),
               TensorSpec("score", "FP64", (-1,)))  # fmt: skip
    signature = Signature((TensorSpec("x", "FP32", (-1, 3)),), outputs)
    assert kernel_output("m", "1", signature, {}) == "p"
    assert kernel_output("m", "1", signature, {"explain_output": "score"}) == "score"
