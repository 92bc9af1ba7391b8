"""Sample sizes: statsmodels' power solutions, rounded up, and they deliver the power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from inferd.stats import SampleSize, sample_size_means, sample_size_proportions
from stats._sim import rate_bounds


def test_means_size_is_the_smallest_with_the_power_asked_for() -> None:
    size = sample_size_means(5.0, 15.0, alpha=0.05, power=0.8)
    assert size == SampleSize(143, 143)
    power = TTestIndPower().power
    assert power(effect_size=1 / 3, nobs1=143, alpha=0.05) >= 0.8
    assert power(effect_size=1 / 3, nobs1=142, alpha=0.05) < 0.8
    # The normal approximation 2 (z_a/2 + z_b)^2 (sd / d)^2 is about two below the t answer.
    z = sps.norm.isf(0.025) + sps.norm.isf(0.2)
    assert 0 <= 143 - 2 * z**2 * 9 <= 3


def test_means_size_delivers_its_power_in_simulation() -> None:
    rng = np.random.default_rng(8)
    n, runs = sample_size_means(5.0, 15.0).control, 1000
    control, treatment = rng.normal(100, 15, (runs, n)), rng.normal(95, 15, (runs, n))
    hits = int((sps.ttest_ind(treatment, control, axis=1, equal_var=False).pvalue < 0.05).sum())
    low, high = rate_bounds(hits, runs)
    assert low <= 0.8 <= high


def test_proportions_size_uses_cohens_h() -> None:
    size = sample_size_proportions(0.10, 0.11, alpha=0.05, power=0.8)
    h = 2 * math.asin(math.sqrt(0.11)) - 2 * math.asin(math.sqrt(0.10))
    n = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)
    assert size.control == math.ceil(n)
    # Var(2 asin sqrt p) is about 1 / n per arm, so n = 2 ((z_a/2 + z_b) / h)^2 (two tails).
    assert size.control == pytest.approx(
        ((sps.norm.isf(0.025) + sps.norm.isf(0.2)) / h) ** 2 * 2, rel=1e-3
    )


def test_unequal_arms_and_reached() -> None:
    size = sample_size_means(5.0, 15.0, ratio=0.5)
    assert size.treatment == math.ceil(size.control * 0.5)
    assert size.control > 143  # a lopsided split needs more in total
    assert size.reached(size.control, size.treatment)
    assert not size.reached(size.control, size.treatment - 1)


def test_bad_arguments_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="difference: expected a finite non-zero effect"):
        sample_size_means(0.0, 1.0)
    with pytest.raises(ValueError, match=r"sd: expected a standard deviation > 0, got 0\.0"):
        sample_size_means(1.0, 0.0)
    with pytest.raises(ValueError, match="power: expected a probability"):
        sample_size_means(1.0, 1.0, power=1.0)
    with pytest.raises(ValueError, match="baseline: expected a rate strictly between 0 and 1"):
        sample_size_proportions(0.0, 0.1)
    with pytest.raises(ValueError, match=r"expected: must differ from baseline \(0.1\)"):
        sample_size_proportions(0.1, 0.1)
