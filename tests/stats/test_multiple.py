"""Holm and Benjamini-Hochberg: textbook values, equal to statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from inferd.stats import adjust


def test_holm_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, made non-decreasing.
    result = adjust([0.01, 0.04, 0.03, 0.005], "holm", alpha=0.05)
    assert result.p_values == pytest.approx((0.03, 0.06, 0.06, 0.02), rel=1e-12)
    assert result.reject == (True, False, False, True)


def test_benjamini_hochberg_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4/1, 4/2, 4/3, 4/4, made non-decreasing from the top.
    result = adjust([0.01, 0.04, 0.03, 0.005], "bh", alpha=0.05)
    assert result.p_values == pytest.approx((0.02, 0.04, 0.04, 0.02), rel=1e-12)
    assert result.reject == (True, True, True, True)


@pytest.mark.parametrize(("method", "name"), [("holm", "holm"), ("bh", "fdr_bh")])
@pytest.mark.parametrize("seed", range(5))
def test_equals_statsmodels(method: str, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p_values = rng.random(int(rng.integers(1, 30))) ** 3
    p_values[:2] = p_values[-2:]  # ties
    result = adjust(p_values.tolist(), method, alpha=0.1)  # type: ignore[arg-type]
    reject, adjusted, _, _ = multipletests(p_values, alpha=0.1, method=name)
    assert result.p_values == pytest.approx(tuple(adjusted), rel=1e-9)
    assert result.reject == tuple(reject)


def test_empty_and_bad_input() -> None:
    assert adjust([]).p_values == ()
    with pytest.raises(ValueError, match=r"method: expected one of \[.bh., .holm.\]"):
        adjust([0.1], "bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"p_values: expected values in \[0, 1\]"):
        adjust([1.5])
