"""Helpers for the simulation tests: Monte-Carlo bounds on a rate."""

from __future__ import annotations

from scipy import stats as sps


def rate_bounds(hits: int, runs: int, confidence: float = 0.99) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of a rate seen ``hits`` times in ``runs``."""
    interval = sps.binomtest(hits, runs).proportion_ci(confidence, method="exact")
    return float(interval.low), float(interval.high)
