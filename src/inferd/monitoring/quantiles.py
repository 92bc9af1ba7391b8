"""Quantiles from histogram buckets, interpolated the way Prometheus's ``histogram_quantile``
does it, so ``/v1/models/{m}/metrics`` and a Prometheus query over the same buckets agree.

The estimate lies in the bucket that holds the quantile's sample, placed linearly between the
bucket's bounds by rank; its error is at most that bucket's width (tested against numpy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """The ``q`` quantile of a histogram.

    Args:
        q: the quantile, 0 to 1.
        bounds: the buckets' upper bounds, ascending, the last one ``+Inf``.
        cumulative: observations at or below each bound (Prometheus ``_bucket`` values).

    Returns:
        The estimate; NaN when there are no observations. Quantiles that fall in the
        ``+Inf`` bucket answer the largest finite bound, as Prometheus does.

    Raises:
        ValueError: q outside 0..1, bounds not ending in +Inf, or lengths that differ.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q: expected a number from 0 to 1, got {q!r}")
    if len(bounds) != len(cumulative) or not bounds or not math.isinf(bounds[-1]):
        raise ValueError(
            f"bounds: expected ascending upper bounds ending in +Inf, one per count; got "
            f"{len(bounds)} bounds (last {bounds[-1] if bounds else None}) and "
            f"{len(cumulative)} counts"
        )
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    if index == len(bounds) - 1:
        return float(bounds[-2]) if len(bounds) > 1 else math.nan
    upper = float(bounds[index])
    if index == 0 and upper <= 0:
        return upper
    lower = float(bounds[index - 1]) if index > 0 else 0.0
    below = float(cumulative[index - 1]) if index > 0 else 0.0
    in_bucket = float(cumulative[index]) - below
    if in_bucket <= 0:
        return upper
    # min(): rounding must not carry the estimate past its bucket's bound.
    return min(upper, lower + (upper - lower) * (rank - below) / in_bucket)
