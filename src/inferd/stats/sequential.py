"""Always-valid inference: the mixture sequential probability ratio test (mSPRT).

A fixed-horizon test read at every look finds "significant" differences between identical
variants far more often than alpha (peeking 50 times at alpha = 0.05 gives about 30%). The
mSPRT of Johari, Koomen, Pekelis and Walsh ("Always valid inference", 2017/2022) gives p-values
and confidence intervals that stay valid however often and whenever they are looked at:

    P(p_n <= alpha at ANY look n) <= alpha        (under "no difference")
    P(theta in CI_n at EVERY look n) >= 1 - alpha (a confidence sequence)

so an experiment may be watched continuously and stopped as soon as it is significant.

The estimate of the difference d_n (treatment minus control) with variance V_n is treated as a
Brownian motion in information time 1 / V_n; the likelihood ratio of "difference theta" against
theta0, mixed over theta ~ N(theta0, tau**2), is

    Lambda_n = sqrt(V / (V + tau**2)) * exp(tau**2 (d - theta0)**2 / (2 V (V + tau**2)))

a martingale under theta0, so by Ville's inequality P(sup Lambda_n >= 1/alpha) <= alpha.
p_n = min(1, 1 / Lambda_n) (and its running minimum over looks); CI_n = every theta0 with
Lambda_n(theta0) < 1/alpha. This is exact for normal data with known variances; with variances
estimated from the data (Welch-style, or q (1 - q) with q = (x + 1) / (n + 2) for rates) it
holds asymptotically, which for a few hundred observations per arm is close (see
tests/stats/test_sequential.py).

``tau`` is the scale of effects the test is tuned to find fastest. Fix it before the experiment
(the effect you hope to detect); by default it is DEFAULT_TAU per-observation standard
deviations, estimated from the data. The price of validity at every look is power: at the same
sample size the mSPRT needs a larger effect than a test read once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from inferd.stats.comparison import Interval, check_alpha
from inferd.stats.means import Moments
from inferd.stats.proportions import Rate

DEFAULT_TAU = 0.1  # mixing sd, in per-observation standard deviations: a "small" effect
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Sequential:
    """An always-valid result at one look.

    Attributes:
        method: ``"msprt_means"`` or ``"msprt_proportions"``.
        difference: treatment minus control.
        variance: the variance of ``difference``.
        tau: the mixing standard deviation used (metric units).
        p_value: always-valid p-value (the running minimum when ``previous`` was given).
        ci: ``1 - alpha`` confidence sequence (intersected with ``previous``'s).
        alpha: the level.
        significant: ``p_value < alpha``.
    """

    method: str
    difference: float
    variance: float
    tau: float
    p_value: float
    ci: Interval
    alpha: float
    significant: bool


def always_valid_p_value(
    difference: npt.ArrayLike, variance: npt.ArrayLike, tau: npt.ArrayLike, theta0: float = 0.0
) -> FloatArray:
    """``min(1, 1 / Lambda)`` element-wise; arrays broadcast (simulations use that)."""
    d, v = np.asarray(difference, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = 0.5 * np.log(v / (v + t2)) + t2 * (d - theta0) ** 2 / (2 * v * (v + t2))
        p = np.minimum(1.0, np.exp(-log_lr))
    # V == 0: the difference is known exactly.
    return np.where(v > 0, p, np.where(d == theta0, 1.0, 0.0))


def confidence_sequence(
    difference: npt.ArrayLike, variance: npt.ArrayLike, tau: npt.ArrayLike, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bounds of the ``1 - alpha`` confidence sequence; arrays broadcast."""
    check_alpha(alpha)
    d, v = np.asarray(difference, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log((v + t2) / v)))
    half = np.where(v > 0, half, 0.0)
    return d - half, d + half


def _result(
    method: str, d: float, v: float, tau: float, alpha: float, previous: Sequential | None
) -> Sequential:
    if not tau > 0:
        raise ValueError(f"tau: expected a mixing standard deviation > 0, got {tau!r}")
    p = float(always_valid_p_value(d, v, tau))
    low, high = (float(x) for x in confidence_sequence(d, v, tau, alpha))
    if previous is not None:
        p = min(p, previous.p_value)
        # Intersecting keeps the sequence nested; an empty intersection (possible only when
        # the model is off) keeps the newer interval.
        lo, hi = max(low, previous.ci[0]), min(high, previous.ci[1])
        low, high = (lo, hi) if lo <= hi else (low, high)
    return Sequential(method, d, v, tau, p, (low, high), alpha, p < alpha)


def sequential_means(
    control: Moments,
    treatment: Moments,
    alpha: float = 0.05,
    tau: float | None = None,
    variances: tuple[float, float] | None = None,
    previous: Sequential | None = None,
) -> Sequential:
    """Always-valid test of a difference in means (treatment minus control).

    Args:
        control: the control's moments so far (at least two observations).
        treatment: the treatment's moments so far.
        alpha: the level.
        tau: mixing sd in metric units; default DEFAULT_TAU pooled standard deviations.
        variances: known per-observation variances (control, treatment); estimated if None.
        previous: the result of the previous look, to carry the running minimum p-value.

    Raises:
        ValueError: fewer than two observations in an arm, or tau <= 0.
    """
    check_alpha(alpha)
    for name, m in (("control", control), ("treatment", treatment)):
        if m.n < 2:
            raise ValueError(f"{name}.n: expected at least 2 observations, got {m.n}")
    va, vb = variances if variances is not None else (control.variance, treatment.variance)
    if tau is None:
        pooled = ((control.n - 1) * va + (treatment.n - 1) * vb) / (control.n + treatment.n - 2)
        tau = DEFAULT_TAU * math.sqrt(pooled) if pooled > 0 else 1.0
    d = treatment.mean - control.mean
    return _result("msprt_means", d, va / control.n + vb / treatment.n, tau, alpha, previous)


def sequential_proportions(
    control: Rate,
    treatment: Rate,
    alpha: float = 0.05,
    tau: float | None = None,
    previous: Sequential | None = None,
) -> Sequential:
    """Always-valid test of a difference in rates (treatment minus control).

    The variance is each arm's own ``q (1 - q) / n`` with ``q = (successes + 1) / (trials + 2)``
    (never 0, so 0 of 2 against 2 of 2 is not a certainty); ``tau`` defaults to DEFAULT_TAU
    times the pooled ``sqrt(q (1 - q))``. Arguments as in :func:`sequential_means`.
    """
    check_alpha(alpha)
    for name, r in (("control", control), ("treatment", treatment)):
        if r.trials < 1:
            raise ValueError(f"{name}.trials: expected at least 1 trial, got {r.trials}")
    if tau is None:
        pooled = _smoothed(
            control.successes + treatment.successes, control.trials + treatment.trials
        )
        tau = DEFAULT_TAU * math.sqrt(pooled * (1 - pooled))
    qa, qb = (
        _smoothed(control.successes, control.trials),
        _smoothed(treatment.successes, treatment.trials),
    )
    v = qa * (1 - qa) / control.trials + qb * (1 - qb) / treatment.trials
    d = treatment.value - control.value
    result = _result("msprt_proportions", d, v, tau, alpha, previous)
    # A difference of rates lies in [-1, 1] whatever the normal approximation says.
    return replace(result, ci=(max(result.ci[0], -1.0), min(result.ci[1], 1.0)))


def _smoothed(successes: int, trials: int) -> float:
    return (successes + 1) / (trials + 2)
