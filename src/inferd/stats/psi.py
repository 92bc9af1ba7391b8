"""Population stability index: how far a feature's binned distribution has moved.

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with ``expected`` the reference's share of each bin and ``actual`` the current window's. It is
a symmetric KL divergence, not a test: it has no p-value and grows with real change rather
than with sample size, which makes it a steady dashboard number next to the tests' p-values.
The industry's rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a
major one. Numeric features use ``bins`` quantile bins of the reference (about equal shares,
so every bin counts), categorical ones a bin per reference category plus one for values the
reference never had. Empty bins are floored at EPSILON so the logarithm stays finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
EPSILON = 1e-4
FloatArray = npt.NDArray[np.float64]


def quantile_edges(reference: npt.ArrayLike, bins: int = 10) -> FloatArray:
    """Interior bin edges at the reference's quantiles (duplicates from ties removed).

    Bin i holds values in ``(edges[i-1], edges[i]]``; the outer bins are open-ended, so
    current values outside the reference's range still land in a bin.
    """
    if bins < 2:
        raise ValueError(f"bins: expected at least 2 bins, got {bins}")
    values = np.asarray(reference, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("reference: expected at least one value, got none")
    return np.unique(np.quantile(values, np.arange(1, bins) / bins))


def bin_fractions(values: npt.ArrayLike, edges: FloatArray) -> FloatArray:
    """Share of ``values`` in each of the ``len(edges) + 1`` bins ``edges`` make."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("values: expected at least one value, got none")
    counts = np.bincount(np.searchsorted(edges, array, side="left"), minlength=edges.size + 1)
    return counts / array.size


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI of two vectors of bin shares (each summing to 1)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"actual: expected {e.shape[0]} bin shares, got {a.shape[0]}")
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numeric(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10) -> float:
    """PSI of a numeric feature over ``bins`` quantile bins of the reference."""
    edges = quantile_edges(reference, bins)
    return psi(bin_fractions(reference, edges), bin_fractions(current, edges))


def category_fractions(
    values: Sequence[object] | np.ndarray, categories: Sequence[object]
) -> FloatArray:
    """Share of ``values`` in each category, plus a last bin for values not among them."""
    array = np.asarray(values, dtype=object).ravel()
    if array.size == 0:
        raise ValueError("values: expected at least one value, got none")
    index = {category: i for i, category in enumerate(categories)}
    positions = [index.get(value, len(categories)) for value in array.tolist()]
    return np.bincount(positions, minlength=len(categories) + 1) / array.size


def psi_categorical(
    reference: Sequence[object] | np.ndarray, current: Sequence[object] | np.ndarray
) -> float:
    """PSI of a categorical feature: a bin per reference category, one for the unseen."""
    categories = list(dict.fromkeys(np.asarray(reference, dtype=object).ravel().tolist()))
    return psi(category_fractions(reference, categories), category_fractions(current, categories))
