"""Paired rounds on a machine whose speed drifts: the median of per-round ratios, and how
precise it is.

The benches that compare a feature on and off in one server (``experiments.py``,
``shadow.py``) measure both modes in each round, ABBA, and report the median of the rounds'
ratios with a percentile-bootstrap interval.
"""

from __future__ import annotations

import numpy as np


def median_interval(ratios: list[float], draws: int = 10_000) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the median of ``ratios``: how far this
    machine's noise leaves the result from the true ratio."""
    rng = np.random.default_rng(0)
    values = np.asarray(ratios)
    medians = np.median(rng.choice(values, size=(draws, values.size)), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)
