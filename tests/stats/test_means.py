"""Welch's t-test from moments: equal to scipy on raw data, and it finds a real effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from inferd.stats import Moments, welch
from stats._sim import rate_bounds


@pytest.mark.parametrize("seed", range(5))
def test_welch_equals_scipy_on_the_raw_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = rng.normal(10.0, 3.0, size=int(rng.integers(5, 400)))
    treatment = rng.normal(10.5, 5.0, size=int(rng.integers(5, 400)))
    result = welch(Moments.of(control), Moments.of(treatment), alpha=0.1)
    expected = sps.ttest_ind(treatment, control, equal_var=False)
    interval = expected.confidence_interval(confidence_level=0.9)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.ci[0] == pytest.approx(interval.low, rel=1e-9)
    assert result.ci[1] == pytest.approx(interval.high, rel=1e-9)
    assert result.difference == pytest.approx(treatment.mean() - control.mean(), rel=1e-9)
    assert result.significant == (expected.pvalue < 0.1)


def test_moments_add_and_give_the_sample_mean_and_variance() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=100), rng.normal(size=50)
    both = Moments.of(a) + Moments.of(b)
    assert both.n == 150
    assert both.mean == pytest.approx(np.concatenate([a, b]).mean(), rel=1e-12)
    assert both.variance == pytest.approx(np.concatenate([a, b]).var(ddof=1), rel=1e-9)
    assert math.isnan(Moments(1, 2.0, 4.0).variance)


def test_n100_sd15_against_n95_sd15_at_1000_per_arm_is_significant() -> None:
    rng = np.random.default_rng(2024)
    control, treatment = rng.normal(100, 15, 1000), rng.normal(95, 15, 1000)
    result = welch(Moments.of(control), Moments.of(treatment))
    assert result.significant
    assert result.p_value < 1e-6
    assert result.ci[0] < -5 < result.ci[1] < 0
    assert result.lift_ci is not None
    assert result.lift_ci[0] < -0.05 < result.lift_ci[1] < 0


def test_the_lift_interval_covers_the_true_lift_at_its_level() -> None:
    rng = np.random.default_rng(11)
    runs, covered = 1000, 0
    for _ in range(runs):
        result = welch(Moments.of(rng.normal(20, 6, 300)), Moments.of(rng.normal(22, 6, 300)))
        assert result.lift_ci is not None
        covered += result.lift_ci[0] <= 0.1 <= result.lift_ci[1]
    low, high = rate_bounds(covered, runs)
    assert low <= 0.95 <= high


def test_constant_arms_have_an_exact_difference() -> None:
    same = welch(Moments.of([3.0, 3.0, 3.0]), Moments.of([3.0, 3.0]))
    assert (same.p_value, same.statistic, same.ci) == (1.0, 0.0, (0.0, 0.0))
    apart = welch(Moments.of([3.0, 3.0, 3.0]), Moments.of([4.0, 4.0]))
    assert (apart.p_value, apart.statistic, apart.significant) == (0.0, math.inf, True)


def test_too_few_observations_and_a_bad_alpha_are_refused() -> None:
    with pytest.raises(ValueError, match=r"treatment\.n: expected at least 2 observations, got 1"):
        welch(Moments.of([1.0, 2.0]), Moments.of([1.0]))
    with pytest.raises(ValueError, match="alpha: expected a level strictly between 0 and 1"):
        welch(Moments.of([1.0, 2.0]), Moments.of([1.0, 3.0]), alpha=1.5)
