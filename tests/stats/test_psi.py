"""Population stability index: by hand, quantile bins, categories never seen before."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inferd.stats import PSI_MAJOR, PSI_MODERATE, psi, psi_categorical, psi_numeric
from inferd.stats.psi import EPSILON, bin_fractions, quantile_edges


def test_psi_by_hand() -> None:
    expected, actual = [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert psi([1.0, 0.0], [0.0, 1.0]) == pytest.approx(2 * (1 - EPSILON) * math.log(1 / EPSILON))


def test_quantile_bins_split_the_reference_evenly_and_take_outliers() -> None:
    reference = np.arange(1000, dtype=float)
    edges = quantile_edges(reference, bins=10)
    assert edges.size == 9
    assert bin_fractions(reference, edges) == pytest.approx(np.full(10, 0.1))
    assert bin_fractions([-1e9, 1e9], edges)[[0, -1]] == pytest.approx([0.5, 0.5])
    assert quantile_edges(np.r_[np.zeros(900), np.arange(100.0)], bins=10).size < 9  # ties


def test_numeric_psi_is_small_without_drift_and_large_with_it() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 20_000)
    assert psi_numeric(reference, rng.normal(0, 1, 20_000)) < 0.01
    assert PSI_MODERATE < psi_numeric(reference, rng.normal(0.5, 1, 20_000)) < PSI_MAJOR + 0.05
    assert psi_numeric(reference, rng.normal(1.5, 1, 20_000)) > PSI_MAJOR


def test_categorical_psi_counts_unseen_categories() -> None:
    reference = ["a"] * 50 + ["b"] * 50
    assert psi_categorical(reference, ["b", "a"] * 30) == pytest.approx(0.0, abs=1e-12)
    shares = [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]
    assert psi_categorical(reference, ["a", "b", "c", "c"]) == pytest.approx(psi(*shares))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="bins: expected at least 2 bins, got 1"):
        quantile_edges([1.0, 2.0], bins=1)
    with pytest.raises(ValueError, match="reference: expected at least one value"):
        quantile_edges([])
    with pytest.raises(ValueError, match="actual: expected 2 bin shares, got 3"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])
