"""Sample ratio mismatch: do the assignment counts match the configured weights?

A 50/50 experiment that logs 52% of its units in one arm is broken (a redirect that loses
users, a bot filter that treats one arm differently, a crash in one version) and none of its
results can be trusted, however significant. The check is a chi-square goodness of fit of the
counts to the weights (``scipy.stats.chisquare``); the conventional threshold is p < 0.001,
strict because the check runs on every look at every experiment and a false alarm is costly.

Count units, not requests, where possible: a unit sending many requests makes request counts
vary far more than the multinomial law the test assumes, and the check then over-warns.

When the weights changed during the experiment, the counts follow each period's weights in
turn: :func:`check_sample_ratio_over_periods` expects sum over periods of (the period's count
times its weights), not the newest weights times the total, which would alarm on a healthy
experiment whose split moved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

from inferd.stats.comparison import check_alpha

SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """The outcome of a sample-ratio check.

    Attributes:
        statistic: chi-square statistic (``inf`` when a weight-0 arm got units).
        p_value: its p-value.
        expected: the counts the weights call for.
        mismatch: ``p_value < threshold``.
        message: what was found, in words, for the results page.
    """

    statistic: float
    p_value: float
    expected: tuple[float, ...]
    mismatch: bool
    message: str


def _validate(counts: Sequence[int], weights: Sequence[float]) -> None:
    if len(counts) != len(weights) or len(counts) < 2:
        raise ValueError(
            f"counts, weights: expected two equally long lists of at least 2, got "
            f"{len(counts)} counts and {len(weights)} weights"
        )
    if any(c < 0 for c in counts):
        raise ValueError(f"counts: expected counts >= 0, got {list(counts)}")
    if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"weights: expected finite weights >= 0 with a positive sum, got {weights}"
        )


def check_sample_ratio(
    counts: Sequence[int], weights: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SampleRatio:
    """Chi-square goodness of fit of assignment counts to configured weights.

    Args:
        counts: units (or requests) assigned to each variant.
        weights: the configured weights, same order (normalised to sum to 1).
        threshold: p-values below this are a mismatch (default 0.001).

    Raises:
        ValueError: lists of different lengths or shorter than 2, negative counts, or weights
            not >= 0 with a positive sum.

    Example:
        >>> check_sample_ratio([52_000, 48_000], [0.5, 0.5]).mismatch
        True
    """
    check_alpha(threshold)
    _validate(counts, weights)
    total, weight_sum = sum(counts), float(sum(weights))
    expected = tuple(total * w / weight_sum for w in weights)
    observed = ", ".join(f"{c} ({c / total:.2%})" if total else "0" for c in counts)
    wanted = ", ".join(f"{w / weight_sum:.2%}" for w in weights)
    stray = [i for i, (c, w) in enumerate(zip(counts, weights, strict=True)) if w == 0 and c > 0]
    if stray:
        return SampleRatio(
            math.inf,
            0.0,
            expected,
            True,
            f"sample ratio mismatch: variant(s) {stray} have weight 0 but got "
            f"units; counts {observed}",
        )
    keep = [i for i, w in enumerate(weights) if w > 0]
    if total == 0 or len(keep) < 2:
        return SampleRatio(0.0, 1.0, expected, False, "no sample ratio check: nothing to compare")
    result = sps.chisquare([counts[i] for i in keep], [expected[i] for i in keep])
    p = float(result.pvalue)
    if p < threshold:
        message = (
            f"sample ratio mismatch: counts {observed} vs weights {wanted} "
            f"(chi-square p = {p:.3g} < {threshold}); assignment or logging is broken, "
            f"do not trust the results until it is explained"
        )
    else:
        message = f"no sample ratio mismatch: counts {observed} fit weights {wanted} (p = {p:.3g})"
    return SampleRatio(float(result.statistic), p, expected, p < threshold, message)


def check_sample_ratio_over_periods(
    counts: Sequence[Sequence[int]],
    weights: Sequence[Sequence[float]],
    threshold: float = SRM_THRESHOLD,
) -> SampleRatio:
    """Chi-square of the summed counts against the sum of each weight period's expectation.

    Period ``p`` holds ``N_p = sum(counts[p])`` units; variant ``i`` is expected to have
    ``sum_p N_p * weights[p][i]`` of them (weights normalised per period). The observed counts
    are summed over the periods and tested against those expectations
    (``scipy.stats.chisquare``), with ``k - 1`` degrees of freedom as for one period.

    Args:
        counts: per period (oldest first), the units assigned to each variant.
        weights: per period, the weights in force, same shape as ``counts``.
        threshold: p-values below this are a mismatch.

    Raises:
        ValueError: no periods, ``counts`` and ``weights`` of different shapes, or a period's
            counts or weights invalid as in :func:`check_sample_ratio`.

    Example:
        >>> check_sample_ratio_over_periods([[500, 500], [900, 100]],
        ...                                 [[0.5, 0.5], [0.9, 0.1]]).mismatch
        False
    """
    if not counts or len(counts) != len(weights):
        raise ValueError(
            f"counts, weights: expected one list per weight period, the same number of each, "
            f"got {len(counts)} and {len(weights)}"
        )
    for period, (c, w) in enumerate(zip(counts, weights, strict=True)):
        try:
            _validate(c, w)
        except ValueError as err:
            raise ValueError(f"period {period}: {err}") from None
        if len(c) != len(counts[0]):
            raise ValueError(
                f"counts[{period}]: expected {len(counts[0])} variants as in period 0, got {len(c)}"
            )
    expected = [0.0] * len(counts[0])
    for c, w in zip(counts, weights, strict=True):
        total, weight_sum = sum(c), float(sum(w))
        for i, wi in enumerate(w):
            expected[i] += total * wi / weight_sum
    observed = [sum(c[i] for c in counts) for i in range(len(expected))]
    if sum(observed) == 0:
        return SampleRatio(0.0, 1.0, tuple(expected), False, "no sample ratio check: no units")
    # The expected counts, as weights, reproduce themselves: check_sample_ratio scales them to
    # the observed total, which they already sum to.
    return check_sample_ratio(observed, expected, threshold)
