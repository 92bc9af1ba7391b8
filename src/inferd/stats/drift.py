"""Per-feature drift tests between a reference sample and a current window.

    numeric      two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``); PSI on 10
                 quantile bins of the reference
    categorical  chi-square test of homogeneity of the two samples' category counts (bins:
                 the reference's categories plus one for categories it never had); PSI on the
                 same bins
    together     MMD permutation test over the numeric features (:mod:`inferd.stats.mmd`)

All p-values of one check (each feature's, and MMD's) form one family, corrected by Holm (the
chance of any false alarm stays at or below ``alpha``) or Benjamini-Hochberg (the share of
false alarms among the alarms does). The chi-square compares two samples rather than the
window against fixed reference shares, because the reference is a sample too. A feature is
categorical when its values are not numbers, or when it is named in ``categorical``.
Non-finite numeric values (missing values) are dropped before testing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from inferd.stats.mmd import Mmd, mmd_test
from inferd.stats.multiple import Correction, adjust
from inferd.stats.proportions import contingency
from inferd.stats.psi import category_fractions, psi, psi_numeric


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift: the test, its raw and adjusted p-values, PSI and the verdict."""

    name: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    psi: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftReport:
    """All features of one check, the multivariate test, and whether anything drifted."""

    features: tuple[FeatureDrift, ...]
    multivariate: Mmd | None
    multivariate_p_adjusted: float | None
    alpha: float
    correction: Correction
    drifted: bool


def ks_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and two-sided p-value."""
    result = sps.ks_2samp(_numeric("reference", reference), _numeric("current", current))
    return float(result.statistic), float(result.pvalue)


def chi_square_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float, float]:
    """Chi-square homogeneity statistic, p-value and PSI of a categorical feature."""
    ref = np.asarray(reference, dtype=object).ravel()
    cur = np.asarray(current, dtype=object).ravel()
    categories = list(dict.fromkeys(ref.tolist()))
    shares = category_fractions(ref, categories), category_fractions(cur, categories)
    table = np.vstack([shares[0] * ref.size, shares[1] * cur.size]).round()
    if np.count_nonzero(table.sum(axis=0)) < 2:  # one category on both sides: nothing moved
        return 0.0, 1.0, psi(*shares)
    result = contingency(table)
    return result.statistic, result.p_value, psi(*shares)


def _numeric(name: str, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{name}: expected at least one finite value, got none")
    return array


def _is_categorical(values: npt.ArrayLike) -> bool:
    return np.asarray(values).dtype.kind not in "iuf"  # booleans are categories


def _feature(
    ref: npt.ArrayLike, cur: npt.ArrayLike, categorical: bool
) -> tuple[str, float, float, float]:
    if categorical:
        stat, p, value = chi_square_test(ref, cur)
        return "chi_square", stat, p, value
    stat, p = ks_test(ref, cur)
    return "ks", stat, p, psi_numeric(_numeric("reference", ref), _numeric("current", cur))


def detect_drift(
    reference: Mapping[str, npt.ArrayLike],
    current: Mapping[str, npt.ArrayLike],
    alpha: float = 0.05,
    correction: Correction = "holm",
    categorical: Collection[str] = (),
    multivariate: bool = True,
    seed: int | None = 0,
    permutations: int = 200,
    max_samples: int = 500,
) -> DriftReport:
    """Test every feature of ``current`` against ``reference``, corrected as one family.

    Args:
        reference: feature name -> reference values.
        current: feature name -> current window values (the same features).
        alpha: the false-alarm level of the whole check.
        correction: ``"holm"`` (any false alarm <= alpha) or ``"bh"`` (false discovery rate).
        categorical: features to treat as categories even though their values are numbers.
        multivariate: add the MMD test over the numeric features (when there are two or more
            and every row has them all, i.e. the arrays are equally long on each side).
        seed: seeds MMD's subsampling and permutations.
        permutations: MMD's permutations.
        max_samples: MMD's rows per side at most.

    Raises:
        ValueError: the two sides name different features, or a feature has no values.
    """
    if set(reference) != set(current) or not reference:
        raise ValueError(
            f"current: expected the reference's features {sorted(reference)}, got {sorted(current)}"
        )
    names = list(reference)
    kinds = {n: n in categorical or _is_categorical(reference[n]) for n in names}
    rows = [_feature(reference[n], current[n], kinds[n]) for n in names]
    numeric = [n for n in names if not kinds[n]]
    mmd = None
    if multivariate and len(numeric) >= 2:
        mmd = _multivariate(reference, current, numeric, seed, permutations, max_samples)
    p_values = [row[2] for row in rows] + ([mmd.p_value] if mmd is not None else [])
    adjusted = adjust(p_values, correction, alpha)
    features = tuple(
        FeatureDrift(name, test, stat, p, p_adj, value, reject)
        for name, (test, stat, p, value), p_adj, reject in zip(
            names, rows, adjusted.p_values, adjusted.reject, strict=False
        )
    )
    mmd_p = adjusted.p_values[-1] if mmd is not None else None
    return DriftReport(features, mmd, mmd_p, alpha, correction, any(adjusted.reject))


def _matrix(data: Mapping[str, npt.ArrayLike], names: list[str]) -> npt.NDArray[np.float64] | None:
    columns = [np.asarray(data[n], dtype=np.float64).ravel() for n in names]
    if len({column.size for column in columns}) != 1:  # not rows of one table
        return None
    matrix = np.column_stack(columns)
    # Rows with a missing value cannot be placed in feature space.
    return matrix[np.isfinite(matrix).all(axis=1)]


def _multivariate(
    reference: Mapping[str, npt.ArrayLike],
    current: Mapping[str, npt.ArrayLike],
    numeric: list[str],
    seed: int | None,
    permutations: int,
    max_samples: int,
) -> Mmd | None:
    ref, cur = _matrix(reference, numeric), _matrix(current, numeric)
    if ref is None or cur is None or ref.shape[0] < 2 or cur.shape[0] < 2:
        return None
    return mmd_test(ref, cur, permutations, max_samples, seed)
