"""Multivariate drift: maximum mean discrepancy (MMD) with an RBF kernel, permutation test.

Per-feature tests miss a change in how features move together (two features whose correlation
flips keep both marginals). MMD compares whole distributions: with a characteristic kernel
such as the Gaussian RBF it is zero only when the two distributions are equal. Chosen over a
domain classifier because it needs no model and no training (scikit-learn stays an optional
extra), has one parameter set by a standard rule, and its permutation p-value is exact in
finite samples: under "no drift" it is uniform, so the false-alarm rate is what is asked.

    features standardised by the reference's mean and standard deviation
    bandwidth  the median pairwise distance of the pooled sample (the median heuristic)
    statistic  biased MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)
    p-value    (1 + #{permutations with MMD^2 >= observed}) / (1 + permutations)

The cost is bounded: each side is subsampled to ``max_samples`` rows and the permutations are
one matrix product, ``permutations * (2 * max_samples)**2`` multiply-adds (2 * 10**8 at the
defaults, a fraction of a second).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Mmd:
    """An MMD permutation test's outcome."""

    statistic: float
    p_value: float
    bandwidth: float
    permutations: int
    samples: tuple[int, int]


def _rows(name: str, values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    array = array[:, None] if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{name}: expected a 2-d array of at least 2 rows, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return array


def rbf_kernel(pooled: FloatArray, bandwidth: float | None = None) -> tuple[FloatArray, float]:
    """The Gaussian kernel matrix of the rows and the bandwidth used (median heuristic)."""
    sq = np.einsum("ij,ij->i", pooled, pooled)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    if bandwidth is None:
        distances = np.sqrt(d2[np.triu_indices_from(d2, k=1)])
        positive = distances[distances > 0]
        bandwidth = float(np.median(positive)) if positive.size else 1.0
    return np.exp(-d2 / (2.0 * bandwidth * bandwidth)), bandwidth


def mmd_test(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    permutations: int = 200,
    max_samples: int = 500,
    seed: int | None = 0,
    bandwidth: float | None = None,
) -> Mmd:
    """Permutation test of "current comes from the reference's distribution".

    Args:
        reference: rows of the reference (n x features).
        current: rows of the current window, same features.
        permutations: random relabellings (the p-value's resolution is 1 / (1 + this)).
        max_samples: at most this many rows per side, drawn without replacement.
        seed: seeds the subsampling and the permutations.
        bandwidth: the kernel's length scale in standardised units; median heuristic if None.

    Raises:
        ValueError: fewer than 2 rows, different feature counts, non-finite values, or
            permutations < 1.
    """
    x, y = _rows("reference", reference), _rows("current", current)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"current: expected {x.shape[1]} features, got {y.shape[1]}")
    if permutations < 1 or max_samples < 2:
        raise ValueError(
            f"permutations, max_samples: expected >= 1 and >= 2, got {permutations}, {max_samples}"
        )
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_samples:
        x = x[rng.choice(x.shape[0], max_samples, replace=False)]
    if y.shape[0] > max_samples:
        y = y[rng.choice(y.shape[0], max_samples, replace=False)]
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    centre = x.mean(axis=0)
    kernel, width = rbf_kernel(np.vstack([(x - centre) / scale, (y - centre) / scale]), bandwidth)
    m, n = x.shape[0], y.shape[0]
    # Row 0: the observed labelling; rows 1..: permutations. MMD^2 = w^T K w per row.
    labels = np.tile(np.r_[np.ones(m, dtype=bool), np.zeros(n, dtype=bool)], (permutations + 1, 1))
    labels[1:] = rng.permuted(labels[1:], axis=1)
    weights = np.where(labels, 1.0 / m, -1.0 / n)
    stats = np.einsum("pi,pi->p", weights @ kernel, weights)
    p = (1 + int(np.count_nonzero(stats[1:] >= stats[0]))) / (1 + permutations)
    return Mmd(float(stats[0]), p, width, permutations, (m, n))
