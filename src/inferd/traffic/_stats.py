"""The statistics the experiment results need, from sufficient statistics, on scipy.

A stand-in kept private to ``traffic/`` until ``inferd.stats`` (the tests, checked against
scipy and statsmodels) lands: TODO(#12) call ``inferd.stats`` instead and delete this module.
Each function takes counts and sums, never raw data, so merged aggregates feed them directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment minus control: the effect, its interval, and p-values."""

    effect: float
    ci: tuple[float, float]
    lift: float | None
    lift_ci: tuple[float, float] | None
    p_value: float
    p_sequential: float


def mean_var(n: int, total: float, total_sq: float) -> tuple[float, float]:
    """Mean and sample variance from a count, a sum and a sum of squares."""
    if n == 0:
        return math.nan, math.nan
    mean = total / n
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.nan
    return mean, var


def _lift(
    m1: float, se1: float, m2: float, se2: float, z: float
) -> tuple[float | None, tuple[float, float] | None]:
    # Delta method for m2 / m1 - 1.
    if m1 == 0 or not math.isfinite(m1):
        return None, None
    lift = m2 / m1 - 1.0
    se = math.sqrt(se2**2 / m1**2 + (m2**2) * se1**2 / m1**4)
    return lift, (lift - z * se, lift + z * se)


def _msprt(effect: float, var_effect: float, unit_var: float) -> float:
    """Always-valid p-value of a normal-mixture SPRT (mixing variance: 0.01 unit variances)."""
    if not (var_effect > 0 and unit_var > 0) or not math.isfinite(effect):
        return 1.0
    tau2 = 0.01 * unit_var
    log_lr = 0.5 * math.log(var_effect / (var_effect + tau2)) + (
        effect**2 * tau2 / (2 * var_effect * (var_effect + tau2))
    )
    return float(min(1.0, math.exp(-log_lr)))


def welch(
    a: tuple[int, float, float], b: tuple[int, float, float], alpha: float
) -> Comparison | None:
    """Means of b minus a from (n, mean, variance) each; None without two observations each."""
    (n1, m1, v1), (n2, m2, v2) = a, b
    if n1 < 2 or n2 < 2:
        return None
    se1, se2 = v1 / n1, v2 / n2
    se = math.sqrt(se1 + se2)
    effect = m2 - m1
    if se == 0:
        p = 1.0 if effect == 0 else 0.0
        return Comparison(effect, (effect, effect), *_lift(m1, 0.0, m2, 0.0, 0.0), p, p)
    df = (se1 + se2) ** 2 / (se1**2 / (n1 - 1) + se2**2 / (n2 - 1))
    t = effect / se
    p = float(2 * sps.t.sf(abs(t), df))
    q = float(sps.t.ppf(1 - alpha / 2, df))
    lift, lift_ci = _lift(m1, math.sqrt(se1), m2, math.sqrt(se2), q)
    pooled = (v1 * (n1 - 1) + v2 * (n2 - 1)) / (n1 + n2 - 2)
    return Comparison(effect, (effect - q * se, effect + q * se), lift, lift_ci, p,
                      _msprt(effect, se**2, pooled))  # fmt: skip


def proportions(a: tuple[int, float], b: tuple[int, float], alpha: float) -> Comparison | None:
    """Rates of b minus a from (n, successes) each: two-proportion z-test, Wald interval."""
    (n1, x1), (n2, x2) = a, b
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    effect = p2 - p1
    p = float(2 * sps.norm.sf(abs(effect) / se0)) if se0 > 0 else (1.0 if effect == 0 else 0.0)
    se1, se2 = math.sqrt(p1 * (1 - p1) / n1), math.sqrt(p2 * (1 - p2) / n2)
    se = math.sqrt(se1**2 + se2**2)
    z = float(sps.norm.ppf(1 - alpha / 2))
    lift, lift_ci = _lift(p1, se1, p2, se2, z)
    return Comparison(effect, (effect - z * se, effect + z * se), lift, lift_ci, p,
                      _msprt(effect, se**2, pooled * (1 - pooled)))  # fmt: skip


def srm_p_value(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-square goodness of fit of assignment counts to the weights (sample ratio mismatch)."""
    total = sum(observed)
    keep = [i for i, w in enumerate(weights) if w > 0]
    if total == 0 or len(keep) < 2:
        return None
    expected = [weights[i] * total for i in keep]
    return float(sps.chisquare([observed[i] for i in keep], expected).pvalue)


def label_p_value(table: Sequence[Sequence[int]]) -> float | None:
    """Chi-square test of independence of variant and label."""
    array = np.asarray(table, dtype=np.float64)
    array = array[:, array.sum(axis=0) > 0] if array.size else array
    if array.shape[0] < 2 or array.shape[1] < 2 or (array.sum(axis=1) == 0).any():
        return None
    return float(sps.chi2_contingency(array, correction=False).pvalue)


def rank_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Mann-Whitney U (two-sided) on latency reservoirs."""
    if len(a) < 2 or len(b) < 2:
        return None
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Holm (family-wise) or Benjamini-Hochberg (false discovery rate) adjusted p-values."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p_values[i]))
            adjusted[i] = running
        return adjusted
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, p_values[i] * m / (rank + 1))
        adjusted[i] = min(1.0, running)
    return adjusted
