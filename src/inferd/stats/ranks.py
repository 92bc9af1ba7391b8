"""Mann-Whitney U with a Hodges-Lehmann shift, for skewed metrics such as latency.

Means of latency are dominated by the tail; the rank test asks whether one variant's values
tend to be larger than the other's. It runs on the bounded reservoirs of
:class:`inferd.stats.aggregates.Aggregate` (uniform samples of each variant), so its cost is
bounded too. The p-value is ``scipy.stats.mannwhitneyu(treatment, control)``'s (exact for
small samples without ties, normal approximation with tie correction otherwise).

The difference reported is the Hodges-Lehmann shift (the median of all treatment - control
differences) with Lehmann's distribution-free interval from the normal approximation of U
(ties not corrected for). The lift is the same estimator on the log scale, i.e. the median
ratio minus 1, defined when every value is positive: a "typical" relative change under a
multiplicative shift, not the ratio of means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from inferd.stats.comparison import Comparison, Interval, check_alpha, z_quantile

MAX_PAIRS = 10_000_000  # all pairwise differences are held in memory (80 MB at this size)


def _shift(control: np.ndarray, treatment: np.ndarray, alpha: float) -> tuple[float, Interval]:
    """Hodges-Lehmann estimate and Lehmann interval of the shift treatment - control."""
    m, n = control.size, treatment.size
    differences = (treatment[None, :] - control[:, None]).ravel()
    total = differences.size
    sd_u = math.sqrt(m * n * (m + n + 1) / 12.0)
    k = max(1, math.floor(m * n / 2.0 - z_quantile(alpha) * sd_u))
    k = min(k, (total + 1) // 2)
    low_i, high_i = k - 1, total - k
    parts = np.partition(differences, sorted({low_i, high_i, (total - 1) // 2, total // 2}))
    estimate = 0.5 * (parts[(total - 1) // 2] + parts[total // 2])
    return float(estimate), (float(parts[low_i]), float(parts[high_i]))


def _as_sample(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size < 2:
        raise ValueError(f"{name}: expected at least 2 values, got {array.size}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return array


def mann_whitney(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
) -> Comparison:
    """Two-sided Mann-Whitney U test of treatment against control.

    Args:
        control: the control's sample (e.g. its latency reservoir).
        treatment: the treatment's sample.
        alpha: significance level; intervals are ``1 - alpha``.

    Returns:
        The comparison: ``statistic`` is U of the treatment, ``control``/``treatment`` the
        medians, ``difference`` the Hodges-Lehmann shift, ``lift`` the median ratio - 1.

    Raises:
        ValueError: fewer than two values in an arm, a non-finite value, or more than
            ``MAX_PAIRS`` pairs (subsample first: the reservoirs exist for that).
    """
    check_alpha(alpha)
    a, b = _as_sample("control", control), _as_sample("treatment", treatment)
    if a.size * b.size > MAX_PAIRS:
        raise ValueError(
            f"control, treatment: expected at most {MAX_PAIRS} pairs, got "
            f"{a.size} x {b.size}; pass bounded reservoirs"
        )
    result = sps.mannwhitneyu(b, a, alternative="two-sided")
    p = float(result.pvalue)
    difference, ci = _shift(a, b, alpha)
    lift: float | None = None
    lift_ci: Interval | None = None
    if (a > 0).all() and (b > 0).all():
        log_shift, (low, high) = _shift(np.log(a), np.log(b), alpha)
        lift, lift_ci = math.exp(log_shift) - 1.0, (math.exp(low) - 1.0, math.exp(high) - 1.0)
    return Comparison(
        method="mann_whitney",
        statistic=float(result.statistic),
        p_value=p,
        control=float(np.median(a)),
        treatment=float(np.median(b)),
        difference=difference,
        ci=ci,
        lift=lift,
        lift_ci=lift_ci,
        alpha=alpha,
        significant=p < alpha,
    )
