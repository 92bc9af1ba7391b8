"""Sample ratio mismatch: a 52/48 split at 100k is flagged, a fair one is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from inferd.stats import check_sample_ratio, check_sample_ratio_over_periods


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


def test_counts_over_weight_periods_are_tested_against_the_summed_expectation() -> None:
    # 50/50 for 4,000 units, then 90/10 for 6,000: the traffic followed each period's weights.
    counts = [[2_030, 1_970], [5_380, 620]]
    result = check_sample_ratio_over_periods(counts, [[0.5, 0.5], [0.9, 0.1]])
    expected = [2_000 + 5_400, 2_000 + 600]
    scipy = sps.chisquare([7_410, 2_590], expected)
    assert result.expected == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(scipy.pvalue, rel=1e-9)
    assert not result.mismatch
    # The same totals against the newest weights alone would be a false alarm.
    assert check_sample_ratio([7_410, 2_590], [0.9, 0.1]).mismatch


def test_traffic_that_ignored_a_weight_change_is_a_mismatch() -> None:
    counts = [[2_030, 1_970], [3_010, 2_990]]  # still 50/50 after the move to 90/10
    result = check_sample_ratio_over_periods(counts, [[0.5, 0.5], [0.9, 0.1]])
    assert result.mismatch
    assert result.p_value < 1e-100


def test_periods_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="one list per weight period"):
        check_sample_ratio_over_periods([[1, 2]], [[0.5, 0.5], [0.9, 0.1]])
    with pytest.raises(ValueError, match="period 1: counts, weights"):
        check_sample_ratio_over_periods([[1, 2], [1, 2, 3]], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"counts\[1\]: expected 2 variants"):
        check_sample_ratio_over_periods([[1, 2], [1, 2, 3]], [[0.5, 0.5], [0.4, 0.3, 0.3]])
    assert not check_sample_ratio_over_periods([[0, 0]], [[0.5, 0.5]]).mismatch
