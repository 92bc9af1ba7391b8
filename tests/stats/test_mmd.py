"""MMD: the statistic by its definition, an exact false-alarm rate, power where KS is blind."""

from __future__ import annotations

import numpy as np
import pytest

from inferd.stats import ks_test, mmd_test
from inferd.stats.mmd import rbf_kernel
from stats._sim import rate_bounds


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray, width: float) -> float:
    def k(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.exp(-np.sum((u - v) ** 2) / (2 * width**2)))

    xx = np.mean([k(a, b) for a in x for b in x])
    yy = np.mean([k(a, b) for a in y for b in y])
    xy = np.mean([k(a, b) for a in x for b in y])
    return float(xx + yy - 2 * xy)


def test_the_statistic_is_the_biased_mmd_of_the_standardised_rows() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 2, (15, 3)), rng.normal(0.5, 2, (12, 3))
    result = mmd_test(x, y, permutations=10)
    centre, scale = x.mean(0), x.std(0)
    xs, ys = (x - centre) / scale, (y - centre) / scale
    _, width = rbf_kernel(np.vstack([xs, ys]))
    assert result.bandwidth == width
    assert result.statistic == pytest.approx(_brute_force_mmd2(xs, ys, width), rel=1e-9)
    assert 1 / 11 <= result.p_value <= 1
    assert result.samples == (15, 12)


def test_false_alarms_stay_at_the_level_without_drift() -> None:
    rng = np.random.default_rng(1)
    runs = 200
    alarms = sum(
        mmd_test(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), 39, seed=i).p_value <= 0.05
        for i in range(runs)
    )
    assert rate_bounds(alarms, runs)[0] <= 0.05


def test_a_change_in_correlation_is_found_where_per_feature_tests_see_nothing() -> None:
    rng = np.random.default_rng(2)
    reference = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 2000)
    current = rng.multivariate_normal([0, 0], [[1, -0.8], [-0.8, 1]], 2000)
    assert mmd_test(reference, current).p_value < 0.01
    assert min(ks_test(reference[:, i], current[:, i])[1] for i in range(2)) > 0.01


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match=r"current: expected 2 features, got 3"):
        mmd_test(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="reference: expected a 2-d array of at least 2 rows"):
        mmd_test(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="current: expected finite values"):
        mmd_test(np.zeros((5, 2)), np.full((5, 2), np.nan))
