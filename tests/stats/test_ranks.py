"""Mann-Whitney U with the Hodges-Lehmann shift: scipy's p-value, a brute-force estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from inferd.stats import mann_whitney
from inferd.stats.ranks import MAX_PAIRS
from stats._sim import rate_bounds


@pytest.mark.parametrize("ties", [False, True])
def test_mann_whitney_equals_scipy(ties: bool) -> None:
    rng = np.random.default_rng(3)
    control, treatment = rng.gamma(2.0, 5.0, 300), rng.gamma(2.0, 5.5, 250)
    if ties:  # latencies rounded to whole milliseconds
        control, treatment = np.round(control), np.round(treatment)
    result = mann_whitney(control, treatment)
    expected = sps.mannwhitneyu(treatment, control, alternative="two-sided")
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.control == np.median(control)
    assert result.treatment == np.median(treatment)


def test_the_shift_and_its_interval_are_order_statistics_of_the_differences() -> None:
    rng = np.random.default_rng(4)
    control, treatment = rng.normal(0, 1, 40), rng.normal(0.5, 1, 30)
    differences = np.sort((treatment[None, :] - control[:, None]).ravel())
    result = mann_whitney(control, treatment, alpha=0.05)
    assert result.difference == pytest.approx(np.median(differences), rel=1e-12)
    k = math.floor(40 * 30 / 2 - 1.959963984540054 * math.sqrt(40 * 30 * 71 / 12))
    assert result.ci == (differences[k - 1], differences[-k])


def test_the_shift_interval_covers_the_true_shift_at_its_level() -> None:
    rng = np.random.default_rng(5)
    runs, covered = 400, 0
    for _ in range(runs):
        result = mann_whitney(rng.exponential(10, 120), rng.exponential(10, 100) + 2.0)
        covered += result.ci[0] <= 2.0 <= result.ci[1]
    low, high = rate_bounds(covered, runs)
    assert low <= 0.95 <= high


def test_a_multiplicative_slowdown_shows_as_its_lift() -> None:
    rng = np.random.default_rng(6)
    control = rng.lognormal(3.0, 0.5, 1000)
    result = mann_whitney(control, rng.lognormal(3.0, 0.5, 1000) * 1.2)
    assert result.significant
    assert result.lift_ci is not None
    assert result.lift_ci[0] < 0.2 < result.lift_ci[1]
    assert mann_whitney(control - 100, control).lift is None  # not all positive


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="control: expected at least 2 values, got 1"):
        mann_whitney([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="treatment: expected finite values"):
        mann_whitney([1.0, 2.0], [1.0, math.nan])
    big = np.zeros(math.isqrt(MAX_PAIRS) + 1)
    with pytest.raises(ValueError, match="pass bounded reservoirs"):
        mann_whitney(big, big)
