"""Sample sizes: how many observations each arm needs to detect an effect.

Both functions solve statsmodels' power classes for the control arm's size and round up:

    sample_size_means        TTestIndPower, effect size d = difference / sd (Cohen's d)
    sample_size_proportions  NormalIndPower, effect size h = 2 asin(sqrt p2) - 2 asin(sqrt p1)
                             (Cohen's h, the arcsine transform statsmodels uses)

``ratio`` is treatment size / control size (0.3 / 0.7 for a 70/30 split). The sizes are for a
fixed-horizon two-sided test read once at the end; the sequential test watched all along
needs more to reach the same power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferd.stats.comparison import check_alpha


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Observations needed per arm."""

    control: int
    treatment: int

    def reached(self, control: int, treatment: int) -> bool:
        """Whether both arms have at least the observations needed."""
        return control >= self.control and treatment >= self.treatment


def _check(power: float, ratio: float) -> None:
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected a probability strictly between 0 and 1, got {power!r}")
    if not ratio > 0:
        raise ValueError(f"ratio: expected treatment/control size > 0, got {ratio!r}")


def _sizes(control: float, ratio: float) -> SampleSize:
    n = math.ceil(control)
    return SampleSize(n, math.ceil(n * ratio))


def sample_size_means(
    difference: float, sd: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> SampleSize:
    """Sizes for Welch's / Student's t-test to detect ``difference`` with probability ``power``.

    Args:
        difference: the smallest difference in means worth detecting (metric units, not 0).
        sd: the metric's standard deviation per observation (> 0).
        alpha: two-sided significance level.
        power: probability of detecting ``difference`` if it is real.
        ratio: treatment size / control size.

    Example:
        >>> sample_size_means(5.0, 15.0)   # N(100, 15) vs N(95, 15)
        SampleSize(control=143, treatment=143)
    """
    check_alpha(alpha)
    _check(power, ratio)
    if difference == 0 or not math.isfinite(difference):
        raise ValueError(f"difference: expected a finite non-zero effect, got {difference!r}")
    if not sd > 0:
        raise ValueError(f"sd: expected a standard deviation > 0, got {sd!r}")
    # statsmodels pulls in pandas (a quarter second): import it when first needed.
    from statsmodels.stats.power import TTestIndPower

    n = TTestIndPower().solve_power(
        effect_size=abs(difference) / sd, alpha=alpha, power=power, ratio=ratio
    )
    return _sizes(float(n), ratio)


def sample_size_proportions(
    baseline: float, expected: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> SampleSize:
    """Sizes for the two-proportion test to tell ``expected`` from ``baseline``.

    Args:
        baseline: the control's rate, in (0, 1).
        expected: the treatment's rate worth detecting, in (0, 1), not ``baseline``.
        alpha: two-sided significance level.
        power: probability of detecting the change if it is real.
        ratio: treatment size / control size.
    """
    check_alpha(alpha)
    _check(power, ratio)
    for name, rate in (("baseline", baseline), ("expected", expected)):
        if not 0.0 < rate < 1.0:
            raise ValueError(f"{name}: expected a rate strictly between 0 and 1, got {rate!r}")
    if baseline == expected:
        raise ValueError(f"expected: must differ from baseline ({baseline}), got {expected}")
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = abs(float(proportion_effectsize(expected, baseline)))
    n = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio)
    return _sizes(float(n), ratio)
