"""Sample ratio mismatch: a 52/48 split at 100k is flagged, a fair one is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from inferd.stats import check_sample_ratio


def test_52_48_at_100k_against_50_50_is_a_mismatch() -> None:
    result = check_sample_ratio([52_000, 48_000], [0.5, 0.5])
    assert result.mismatch
    assert result.p_value < 1e-30
    assert result.expected == (50_000.0, 50_000.0)
    assert result.message.startswith("sample ratio mismatch: counts 52000 (52.00%)")
    assert "do not trust the results" in result.message


def test_a_fair_split_is_not_a_mismatch() -> None:
    rng = np.random.default_rng(12)
    control = int(rng.binomial(100_000, 0.5))
    result = check_sample_ratio([control, 100_000 - control], [0.5, 0.5])
    assert not result.mismatch
    assert result.message.startswith("no sample ratio mismatch")


def test_srm_equals_scipy_for_three_arms_with_weights_normalised() -> None:
    counts = [5100, 2950, 2050]
    result = check_sample_ratio(counts, [5, 3, 2])
    expected = sps.chisquare(counts, [5050, 3030, 2020])
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert not result.mismatch


def test_units_on_a_zero_weight_arm_are_a_mismatch() -> None:
    result = check_sample_ratio([500, 500, 3], [0.5, 0.5, 0.0])
    assert result.mismatch
    assert "variant(s) [2] have weight 0" in result.message


def test_bad_counts_and_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="expected two equally long lists of at least 2"):
        check_sample_ratio([1, 2], [1.0])
    with pytest.raises(ValueError, match="counts: expected counts >= 0"):
        check_sample_ratio([-1, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="weights: expected finite weights >= 0"):
        check_sample_ratio([1, 2], [0.0, 0.0])
