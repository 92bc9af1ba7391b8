"""Corrections for testing several hypotheses at once (A/B/n variants, drift features).

Comparing three treatments with a control at alpha = 0.05 each gives about a 14% chance of at
least one false "winner". Two corrections:

    holm  family-wise error rate <= alpha: the chance of any false positive (Holm-Bonferroni,
          valid under any dependence; the default, and what guard metrics and drift use)
    bh    false discovery rate <= alpha: the expected share of false positives among the
          significant ones (Benjamini-Hochberg, valid for independent or positively dependent
          tests); more power when many variants or features are tested

Both equal ``statsmodels.stats.multitest.multipletests`` (methods ``"holm"`` and ``"fdr_bh"``;
tests/stats/test_multiple.py checks it) but are computed here in a few numpy lines: statsmodels'
Holm runs a full ``gc.collect()`` on every call, a 100 ms pause in a large server process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from inferd.stats.comparison import check_alpha

Correction = Literal["holm", "bh"]
_METHODS = ("bh", "holm")


@dataclass(frozen=True, slots=True)
class Adjusted:
    """Adjusted p-values and which hypotheses are rejected, in the input's order."""

    method: Correction
    alpha: float
    p_values: tuple[float, ...]
    reject: tuple[bool, ...]


def adjust(p_values: Sequence[float], method: Correction = "holm", alpha: float = 0.05) -> Adjusted:
    """Adjust p-values for multiple comparisons.

    Args:
        p_values: raw p-values, each in [0, 1].
        method: ``"holm"`` (family-wise error) or ``"bh"`` (false discovery rate).
        alpha: the level the family is held to; a hypothesis is rejected when its adjusted
            p-value is at most ``alpha``.

    Returns:
        Adjusted p-values and the rejections.

    Raises:
        ValueError: an unknown method or a p-value outside [0, 1].

    Example:
        >>> adjust([0.01, 0.04, 0.03], "holm").p_values
        (0.03, 0.06, 0.06)
    """
    check_alpha(alpha)
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {list(_METHODS)}, got {method!r}")
    raw = np.asarray(p_values, dtype=np.float64).ravel()
    if not ((raw >= 0) & (raw <= 1)).all():
        raise ValueError(f"p_values: expected values in [0, 1], got {list(p_values)}")
    m = raw.size
    order = np.argsort(raw, kind="stable")
    ranked = raw[order]
    if method == "holm":  # step down: p_(i) * (m - i + 1), kept non-decreasing
        sorted_adjusted = np.maximum.accumulate(ranked * np.arange(m, 0, -1))
    else:  # step up: p_(i) * m / i, kept non-increasing from the largest
        sorted_adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(sorted_adjusted, 1.0)
    return Adjusted(
        method,
        alpha,
        tuple(float(p) for p in adjusted),
        tuple(bool(p <= alpha) for p in adjusted),
    )
