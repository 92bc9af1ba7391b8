"""Welch's t-test for a difference in means, from sufficient statistics.

The server keeps, per variant and per process, only a count, a sum and a sum of squares
(:class:`Moments`); these add exactly across processes, and they are all Welch's test needs.
Equal to ``scipy.stats.ttest_ind(treatment, control, equal_var=False)`` on the raw data, its
confidence interval included.

Precision: the variance comes from ``sum_sq - sum**2 / n``, which loses about
``log10(mean**2 / variance)`` of float64's 16 digits; for metrics like latency or revenue that
is nothing, for a metric whose mean is 10**6 standard deviations from 0 it would matter
(subtract a typical value before adding observations then).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from inferd.stats.comparison import Comparison, check_alpha, lift_of, log_ratio_interval


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of a sample: enough for its mean and variance.

    ``a + b`` is the moments of the two samples together.
    """

    n: int
    total: float
    total_sq: float

    @classmethod
    def of(cls, values: Iterable[float] | np.ndarray) -> Moments:
        """The moments of a sample of numbers."""
        array = np.asarray(values, dtype=np.float64).ravel()
        return cls(int(array.size), float(array.sum()), float(np.dot(array, array)))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        """The sample mean (NaN when empty)."""
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """The unbiased sample variance (NaN below two observations; never negative)."""
        if self.n < 2:
            return math.nan
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)


def _checked(name: str, moments: Moments) -> Moments:
    if moments.n < 2:
        raise ValueError(f"{name}.n: expected at least 2 observations, got {moments.n}")
    return moments


def welch(control: Moments, treatment: Moments, alpha: float = 0.05) -> Comparison:
    """Welch's unequal-variance t-test of treatment minus control.

    Args:
        control: the control's moments (at least two observations).
        treatment: the treatment's moments (at least two observations).
        alpha: significance level; intervals are ``1 - alpha``.

    Returns:
        The comparison; ``ci`` uses the Welch-Satterthwaite degrees of freedom, ``lift_ci``
        the delta method on the log ratio of the means.

    Raises:
        ValueError: fewer than two observations in an arm, or alpha outside (0, 1).
    """
    check_alpha(alpha)
    a, b = _checked("control", control), _checked("treatment", treatment)
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    difference = b.mean - a.mean
    lift = lift_of(a.mean, b.mean)
    if se == 0:  # both arms constant: the difference is known exactly
        p = 1.0 if difference == 0 else 0.0
        stat = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        exact = (lift, lift) if lift is not None else None
        interval = (difference, difference)
        return Comparison(
            "welch", stat, p, a.mean, b.mean, difference, interval, lift, exact, alpha, p < alpha
        )
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    stat = difference / se
    p = float(2 * sps.t.sf(abs(stat), df))
    half = float(sps.t.isf(alpha / 2, df)) * se
    return Comparison(
        method="welch",
        statistic=stat,
        p_value=p,
        control=a.mean,
        treatment=b.mean,
        difference=difference,
        ci=(difference - half, difference + half),
        lift=lift,
        lift_ci=log_ratio_interval(a.mean, math.sqrt(va), b.mean, math.sqrt(vb), alpha),
        alpha=alpha,
        significant=p < alpha,
    )
