"""Tests of rates: the two-proportion z-test and chi-square tests over k variants.

    two_proportions   control vs treatment      z with pooled variance (statsmodels'
                                                 ``proportions_ztest``), Wald interval of the
                                                 difference, log-delta interval of the lift
    rates_chi_square  k variants' rates at once  Pearson chi-square on the 2 x k table
    contingency       k variants x m labels      Pearson chi-square of independence

The z-test's p-value uses the variance pooled under "no difference" while its interval uses
each arm's own variance (both are the textbook choices); near the edge of significance the two
can disagree, and the p-value is the one that decides ``significant``. For two arms
``rates_chi_square`` equals the z-test (the statistic is z squared).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from inferd.stats.comparison import (
    Comparison,
    check_alpha,
    lift_of,
    log_ratio_interval,
    z_quantile,
)


@dataclass(frozen=True, slots=True)
class Rate:
    """Successes (conversions) out of trials."""

    successes: int
    trials: int

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.trials:
            raise ValueError(
                f"successes: expected 0 <= successes <= trials ({self.trials}), "
                f"got {self.successes}"
            )

    @property
    def value(self) -> float:
        """successes / trials (NaN without trials)."""
        return self.successes / self.trials if self.trials else math.nan


@dataclass(frozen=True, slots=True)
class ChiSquare:
    """An omnibus chi-square test: statistic, degrees of freedom, p-value, verdict."""

    statistic: float
    dof: int
    p_value: float
    alpha: float
    significant: bool


def two_proportions(control: Rate, treatment: Rate, alpha: float = 0.05) -> Comparison:
    """Two-sided two-proportion z-test of treatment minus control.

    Raises:
        ValueError: an arm without trials, or alpha outside (0, 1).
    """
    check_alpha(alpha)
    for name, rate in (("control", control), ("treatment", treatment)):
        if rate.trials < 1:
            raise ValueError(f"{name}.trials: expected at least 1 trial, got {rate.trials}")
    pa, pb = control.value, treatment.value
    na, nb = control.trials, treatment.trials
    pooled = (control.successes + treatment.successes) / (na + nb)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    difference = pb - pa
    # All successes or all failures: no variance, no evidence of a difference.
    stat = difference / se0 if se0 > 0 else 0.0
    p = float(2 * sps.norm.sf(abs(stat)))
    sea, seb = math.sqrt(pa * (1 - pa) / na), math.sqrt(pb * (1 - pb) / nb)
    half = z_quantile(alpha) * math.sqrt(sea**2 + seb**2)
    return Comparison(
        method="two_proportion_z",
        statistic=stat,
        p_value=p,
        control=pa,
        treatment=pb,
        difference=difference,
        ci=(difference - half, difference + half),
        lift=lift_of(pa, pb),
        lift_ci=log_ratio_interval(pa, sea, pb, seb, alpha),
        alpha=alpha,
        significant=p < alpha,
    )


def contingency(table: Sequence[Sequence[int]] | np.ndarray, alpha: float = 0.05) -> ChiSquare:
    """Pearson chi-square test of independence of rows (variants) and columns (labels).

    Columns that are all zero (a label nobody had) are dropped. No continuity correction.

    Raises:
        ValueError: fewer than two rows or two non-empty columns, a row of zeros, or a
            negative count.
    """
    check_alpha(alpha)
    array = np.asarray(table, dtype=np.float64)
    if array.ndim != 2 or (array < 0).any():
        raise ValueError(f"table: expected a 2-d table of counts >= 0, got shape {array.shape}")
    array = array[:, array.sum(axis=0) > 0]
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(
            f"table: expected at least 2 rows and 2 non-empty columns, got {array.shape}"
        )
    empty = np.flatnonzero(array.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"table: row {int(empty[0])} has no observations")
    result = sps.chi2_contingency(array, correction=False)
    p = float(result.pvalue)
    return ChiSquare(float(result.statistic), int(result.dof), p, alpha, p < alpha)


def rates_chi_square(rates: Sequence[Rate], alpha: float = 0.05) -> ChiSquare:
    """Chi-square test that k variants share one rate (the 2 x k table of outcomes).

    Raises:
        ValueError: fewer than two variants, a variant without trials, or no variance at all
            (every trial a success, or none).
    """
    if len(rates) < 2:
        raise ValueError(f"rates: expected at least 2 variants, got {len(rates)}")
    table = [[r.successes for r in rates], [r.trials - r.successes for r in rates]]
    return contingency(np.asarray(table).T, alpha)
