"""Rates: the two-proportion z-test and the chi-square tests, equal to statsmodels and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from inferd.stats import Rate, contingency, rates_chi_square, two_proportions


@pytest.mark.parametrize("seed", range(5))
def test_two_proportions_equals_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    na, nb = (int(n) for n in rng.integers(200, 5000, size=2))
    xa, xb = int(rng.binomial(na, 0.1)), int(rng.binomial(nb, 0.12))
    result = two_proportions(Rate(xa, na), Rate(xb, nb), alpha=0.05)
    z, p = proportions_ztest([xb, xa], [nb, na])
    low, high = confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff")
    ratio_low, ratio_high = confint_proportions_2indep(
        xb, nb, xa, na, method="log", compare="ratio"
    )
    assert result.statistic == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.ci == pytest.approx((low, high), rel=1e-9)
    assert result.lift == pytest.approx(xb / nb / (xa / na) - 1, rel=1e-9)
    assert result.lift_ci == pytest.approx((ratio_low - 1, ratio_high - 1), rel=1e-9)


def test_two_proportions_finds_a_real_lift_and_not_a_null_one() -> None:
    assert two_proportions(Rate(1000, 10_000), Rate(1150, 10_000)).significant
    assert not two_proportions(Rate(1000, 10_000), Rate(1010, 10_000)).significant


def test_no_variance_means_no_evidence_and_no_lift_interval() -> None:
    result = two_proportions(Rate(0, 100), Rate(0, 80))
    assert (result.statistic, result.p_value, result.lift, result.lift_ci) == (0.0, 1.0, None, None)


def test_rates_chi_square_equals_scipy_and_is_z_squared_for_two_arms() -> None:
    rates = [Rate(100, 1000), Rate(130, 1100), Rate(90, 950)]
    table = [[r.successes, r.trials - r.successes] for r in rates]
    expected = sps.chi2_contingency(table, correction=False)
    result = rates_chi_square(rates)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.dof == 2
    two = rates_chi_square(rates[:2])
    z = two_proportions(rates[0], rates[1])
    assert two.statistic == pytest.approx(z.statistic**2, rel=1e-9)
    assert two.p_value == pytest.approx(z.p_value, rel=1e-9)


def test_contingency_equals_scipy_and_drops_empty_labels() -> None:
    table = [[20, 30, 0, 50], [25, 20, 0, 60], [10, 40, 0, 45]]
    expected = sps.chi2_contingency(np.array(table)[:, [0, 1, 3]], correction=False)
    result = contingency(table, alpha=0.01)
    assert (result.statistic, result.p_value, result.dof) == pytest.approx(
        (expected.statistic, expected.pvalue, expected.dof), rel=1e-9
    )
    assert result.significant == (expected.pvalue < 0.01)


def test_bad_rates_and_tables_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match=r"successes: expected 0 <= successes <= trials \(5\)"):
        Rate(6, 5)
    with pytest.raises(ValueError, match=r"control\.trials: expected at least 1 trial, got 0"):
        two_proportions(Rate(0, 0), Rate(1, 2))
    with pytest.raises(ValueError, match="table: row 1 has no observations"):
        contingency([[1, 2], [0, 0]])
    with pytest.raises(ValueError, match="rates: expected at least 2 variants, got 1"):
        rates_chi_square([Rate(1, 2)])
