"""The mSPRT: its formula, its confidence sequence, and A/A tests peeked at every 100 samples.

The simulations draw each block of 100 observations through its sufficient statistics, which
is exact for normal data: the block's sum is N(100 mu, 100 sd^2) and, independently, its sum of
squared deviations is sd^2 chi^2 with 99 degrees of freedom. Bernoulli blocks are binomial.
That keeps 1,000 runs of 5,000 observations per arm to a few milliseconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from inferd.stats import (
    DEFAULT_TAU,
    Moments,
    Rate,
    always_valid_p_value,
    confidence_sequence,
    sequential_means,
    sequential_proportions,
)
from stats._sim import rate_bounds

ALPHA, RUNS, BLOCK, LOOKS = 0.05, 1000, 100, 50  # peeks at 100, 200, ..., 5,000 per arm


def test_the_p_value_is_one_over_the_mixture_likelihood_ratio() -> None:
    d, v, tau = 0.7, 0.09, 0.5

    def integrand(theta: float) -> float:
        return float(sps.norm.pdf(d, theta, math.sqrt(v)) * sps.norm.pdf(theta, 0, tau))

    mixture, _ = integrate.quad(integrand, -10, 10, epsabs=1e-14)
    ratio = mixture / sps.norm.pdf(d, 0, math.sqrt(v))
    assert float(always_valid_p_value(d, v, tau)) == pytest.approx(1 / ratio, rel=1e-9)


def test_the_confidence_sequence_is_the_set_the_test_does_not_reject() -> None:
    low, high = confidence_sequence(0.7, 0.09, 0.5, ALPHA)
    for edge in (float(low), float(high)):
        assert float(always_valid_p_value(0.7, 0.09, 0.5, theta0=edge)) == pytest.approx(ALPHA)
    assert float(low) < 0.7 < float(high)


def _normal_looks(
    rng: np.random.Generator, mean: float, sd: float, block: int = BLOCK
) -> np.ndarray:
    """(runs, looks, 3) cumulative n, sum, sum of squares of one arm, ``block`` per look."""
    sums = rng.normal(block * mean, math.sqrt(block) * sd, (RUNS, LOOKS))
    deviations = sd**2 * rng.chisquare(block - 1, (RUNS, LOOKS))
    n = np.broadcast_to(block * np.arange(1, LOOKS + 1, dtype=float), (RUNS, LOOKS))
    return np.stack([n, sums.cumsum(1), (deviations + sums**2 / block).cumsum(1)], axis=-1)


def _mean_var(arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, total, total_sq = arm[..., 0], arm[..., 1], arm[..., 2]
    return total / n, (total_sq - total**2 / n) / (n - 1)


def _sequential_and_naive_p(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both p-values at every look, computed as sequential_means and welch compute them."""
    (ma, va), (mb, vb), na, nb = _mean_var(a), _mean_var(b), a[..., 0], b[..., 0]
    tau = DEFAULT_TAU * np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    p_sequential = always_valid_p_value(mb - ma, va / na + vb / nb, tau)
    p_naive = sps.ttest_ind_from_stats(mb, np.sqrt(vb), nb, ma, np.sqrt(va), na, equal_var=False)
    return p_sequential, p_naive.pvalue


def test_the_simulation_computes_what_sequential_means_does() -> None:
    a, b = (
        _normal_looks(np.random.default_rng(0), 100, 15),
        _normal_looks(np.random.default_rng(1), 100, 15),
    )
    p_sequential, _ = _sequential_and_naive_p(a, b)
    moments = [Moments(int(x[0]), x[1], x[2]) for x in (a[3, 7], b[3, 7])]
    assert sequential_means(*moments).p_value == pytest.approx(p_sequential[3, 7], rel=1e-9)


def test_an_aa_test_peeked_every_100_samples_stays_within_alpha_only_when_sequential() -> None:
    rng = np.random.default_rng(20261204)
    a, b = _normal_looks(rng, 100, 15), _normal_looks(rng, 100, 15)
    p_sequential, p_naive = _sequential_and_naive_p(a, b)
    sequential_alarms = int((p_sequential < ALPHA).any(axis=1).sum())
    naive_alarms = int((p_naive < ALPHA).any(axis=1).sum())
    # 99% Clopper-Pearson bounds: sure that the sequential rate is at most alpha and that
    # the naive one (about 0.3 with 50 peeks) is above it.
    assert rate_bounds(sequential_alarms, RUNS)[1] <= ALPHA
    assert rate_bounds(naive_alarms, RUNS)[0] > ALPHA
    # A test read once at the end is fine: the inflation comes from peeking.
    assert rate_bounds(int((p_naive[:, -1] < ALPHA).sum()), RUNS)[0] <= ALPHA


def test_an_unbalanced_70_30_aa_test_peeked_every_200_samples_stays_within_alpha() -> None:
    rng = np.random.default_rng(70)
    a, b = _normal_looks(rng, 50, 10, block=140), _normal_looks(rng, 50, 10, block=60)
    p_sequential, p_naive = _sequential_and_naive_p(a, b)
    assert rate_bounds(int((p_sequential < ALPHA).any(axis=1).sum()), RUNS)[1] <= ALPHA
    assert rate_bounds(int((p_naive < ALPHA).any(axis=1).sum()), RUNS)[0] > ALPHA


def test_an_aa_test_of_rates_peeked_every_100_samples_stays_within_alpha() -> None:
    rng = np.random.default_rng(7)
    xa, xb = (rng.binomial(BLOCK, 0.1, (RUNS, LOOKS)).cumsum(1) for _ in range(2))
    n = BLOCK * np.arange(1, LOOKS + 1)
    qa, qb, pooled = (xa + 1) / (n + 2), (xb + 1) / (n + 2), (xa + xb + 1) / (2 * n + 2)
    tau = DEFAULT_TAU * np.sqrt(pooled * (1 - pooled))
    p = always_valid_p_value((xb - xa) / n, (qa * (1 - qa) + qb * (1 - qb)) / n, tau)
    assert sequential_proportions(Rate(int(xa[5, 9]), 1000), Rate(int(xb[5, 9]), 1000)).p_value == (
        pytest.approx(p[5, 9], rel=1e-9)
    )
    assert rate_bounds(int((p < ALPHA).any(axis=1).sum()), RUNS)[1] <= ALPHA


def test_a_real_effect_is_found_and_the_sequence_covers_it_at_every_look() -> None:
    rng = np.random.default_rng(3)
    a, b = _normal_looks(rng, 100, 15), _normal_looks(rng, 98, 15)
    (ma, va), (mb, vb), n = _mean_var(a), _mean_var(b), a[..., 0]
    tau = DEFAULT_TAU * np.sqrt((va + vb) / 2)
    p = always_valid_p_value(mb - ma, (va + vb) / n, tau)
    low, high = confidence_sequence(mb - ma, (va + vb) / n, tau, ALPHA)
    found = int((p < ALPHA).any(axis=1).sum())
    assert rate_bounds(found, RUNS)[0] > 0.9  # a 2-point drop is found by 5,000 per arm
    missed = int(((low > -2.0) | (high < -2.0)).any(axis=1).sum())
    assert rate_bounds(missed, RUNS)[1] <= ALPHA


def test_previous_looks_carry_the_running_minimum_and_narrow_the_interval() -> None:
    first = sequential_means(Moments.of([1.0, 2.0, 3.0, 4.0]), Moments.of([3.0, 4.0, 5.0, 6.0]))
    later = sequential_means(
        Moments.of([1.0, 2.0, 3.0, 4.0] * 3), Moments.of([1.0, 2.0, 3.0, 4.5] * 3), previous=first
    )
    assert later.p_value <= first.p_value
    assert first.ci[0] <= later.ci[0] <= later.ci[1] <= first.ci[1]
    known = sequential_means(
        Moments.of([1.0, 2.0]), Moments.of([1.0, 2.0]), variances=(1.0, 1.0), tau=0.5
    )
    assert (known.variance, known.tau, known.p_value) == (1.0, 0.5, 1.0)


def test_a_tiny_sample_of_rates_is_never_a_certainty() -> None:
    result = sequential_proportions(Rate(0, 2), Rate(2, 2))
    assert result.difference == 1.0
    assert result.p_value > 0.5
    assert result.ci == (-1.0, 1.0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"control\.n: expected at least 2 observations"):
        sequential_means(Moments.of([1.0]), Moments.of([1.0, 2.0]))
    with pytest.raises(ValueError, match="tau: expected a mixing standard deviation > 0"):
        sequential_means(Moments.of([1.0, 2.0]), Moments.of([1.0, 2.0]), tau=0.0)
    with pytest.raises(ValueError, match=r"treatment\.trials: expected at least 1 trial"):
        sequential_proportions(Rate(1, 2), Rate(0, 0))
