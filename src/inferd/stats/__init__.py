"""Statistics for experiments and drift: pure functions over arrays and sufficient statistics.

Nothing here depends on the rest of inferd; everything is built on scipy and statsmodels and
checked against them (tests/stats). What to use for what (docs/statistics.md has more):

    difference in means          welch(Moments, Moments)            -> Comparison
    difference in rates          two_proportions(Rate, Rate)        -> Comparison
    rates of k variants          rates_chi_square([Rate, ...])      -> ChiSquare
    labels x variants            contingency(table)                 -> ChiSquare
    skewed metrics (latency)     mann_whitney(sample, sample)       -> Comparison
    watching results any time    sequential_means / _proportions    -> Sequential
    several variants at once     adjust(p_values, "holm" | "bh")    -> Adjusted
    broken assignment            check_sample_ratio(counts, weights) -> SampleRatio
      ... weights that changed   check_sample_ratio_over_periods     -> SampleRatio
    how long to run              sample_size_means / _proportions   -> SampleSize
    per-variant state            Aggregate (add, merge, to_dict / from_dict)
    input drift                  detect_drift(reference, current)   -> DriftReport
                                 ks_test, chi_square_test, psi_numeric, psi_categorical,
                                 mmd_test

Example:
    >>> from inferd.stats import Moments, welch
    >>> welch(Moments.of([1.0, 2.0, 3.0]), Moments.of([2.0, 3.0, 4.0])).difference
    1.0
"""

from inferd.stats.aggregates import RESERVOIR_CAPACITY, Aggregate
from inferd.stats.comparison import Comparison, Interval
from inferd.stats.drift import (
    DriftReport,
    FeatureDrift,
    chi_square_test,
    detect_drift,
    ks_test,
)
from inferd.stats.means import Moments, welch
from inferd.stats.mmd import Mmd, mmd_test
from inferd.stats.multiple import Adjusted, Correction, adjust
from inferd.stats.power import SampleSize, sample_size_means, sample_size_proportions
from inferd.stats.proportions import ChiSquare, Rate, contingency, rates_chi_square, two_proportions
from inferd.stats.psi import PSI_MAJOR, PSI_MODERATE, psi, psi_categorical, psi_numeric
from inferd.stats.ranks import mann_whitney
from inferd.stats.sequential import (
    DEFAULT_TAU,
    Sequential,
    always_valid_p_value,
    confidence_sequence,
    sequential_means,
    sequential_proportions,
)
from inferd.stats.srm import (
    SRM_THRESHOLD,
    SampleRatio,
    check_sample_ratio,
    check_sample_ratio_over_periods,
)

__all__ = [
    "DEFAULT_TAU",
    "PSI_MAJOR",
    "PSI_MODERATE",
    "RESERVOIR_CAPACITY",
    "SRM_THRESHOLD",
    "Adjusted",
    "Aggregate",
    "ChiSquare",
    "Comparison",
    "Correction",
    "DriftReport",
    "FeatureDrift",
    "Interval",
    "Mmd",
    "Moments",
    "Rate",
    "SampleRatio",
    "SampleSize",
    "Sequential",
    "adjust",
    "always_valid_p_value",
    "check_sample_ratio",
    "check_sample_ratio_over_periods",
    "chi_square_test",
    "confidence_sequence",
    "contingency",
    "detect_drift",
    "ks_test",
    "mann_whitney",
    "mmd_test",
    "psi",
    "psi_categorical",
    "psi_numeric",
    "rates_chi_square",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_means",
    "sequential_proportions",
    "two_proportions",
    "welch",
]
