"""The result of comparing a treatment with a control, shared by every two-sample test.

Every pairwise test in :mod:`inferd.stats` (Welch's t, the two-proportion z, Mann-Whitney U)
answers with a :class:`Comparison`: the test statistic and p-value, the difference (treatment
minus control) with a confidence interval, the relative lift (treatment / control - 1) with a
confidence interval, and whether the difference is significant at the level asked for.

The lift interval is the delta method on the log of the ratio (for proportions this is Katz's
"log" interval, statsmodels' ``confint_proportions_2indep(compare="ratio", method="log")``).
Working on the log scale keeps the interval inside (-100%, +inf) and makes it asymmetric the
way ratios are; it needs both estimates positive, so the lift interval is ``None`` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment against control: effect, interval, lift, p-value and the verdict.

    Attributes:
        method: the test, e.g. ``"welch"``, ``"two_proportion_z"``, ``"mann_whitney"``.
        statistic: the test statistic (t, z or U), oriented as treatment minus control.
        p_value: two-sided p-value.
        control: the control's estimate (mean, rate or median).
        treatment: the treatment's estimate.
        difference: treatment minus control (for ranks: the Hodges-Lehmann shift).
        ci: ``1 - alpha`` confidence interval of the difference.
        lift: ``treatment / control - 1``, ``None`` when the control estimate is 0.
        lift_ci: ``1 - alpha`` interval of the lift, ``None`` unless both estimates are > 0.
        alpha: the significance level.
        significant: ``p_value < alpha``.
    """

    method: str
    statistic: float
    p_value: float
    control: float
    treatment: float
    difference: float
    ci: Interval
    lift: float | None
    lift_ci: Interval | None
    alpha: float
    significant: bool


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` if it is a probability strictly between 0 and 1, else raise ValueError."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a level strictly between 0 and 1, got {alpha!r}")
    return alpha


def z_quantile(alpha: float) -> float:
    """The two-sided standard normal critical value for level ``alpha``."""
    return float(sps.norm.isf(alpha / 2))


def lift_of(control: float, treatment: float) -> float | None:
    """``treatment / control - 1``, or ``None`` when the control is 0 or not finite."""
    if control == 0 or not math.isfinite(control):
        return None
    return treatment / control - 1.0


def log_ratio_interval(
    control: float, se_control: float, treatment: float, se_treatment: float, alpha: float
) -> Interval | None:
    """Delta-method interval of ``treatment / control - 1`` on the log scale.

    ``Var(log T - log C) ~ se_T**2 / T**2 + se_C**2 / C**2``; the interval is
    ``exp(log(T / C) -/+ z * sd) - 1``. ``None`` unless both estimates are positive.
    """
    if not (control > 0 and treatment > 0):
        return None
    log_ratio = math.log(treatment / control)
    sd = math.sqrt((se_treatment / treatment) ** 2 + (se_control / control) ** 2)
    half = z_quantile(alpha) * sd
    return (math.exp(log_ratio - half) - 1.0, math.exp(log_ratio + half) - 1.0)
