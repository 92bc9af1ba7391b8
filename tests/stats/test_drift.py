"""Per-feature drift: scipy's tests, a bounded false-alarm rate, a half-sd shift found."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from inferd.stats import chi_square_test, detect_drift, ks_test
from stats._sim import rate_bounds

ALPHA = 0.05


def test_ks_equals_scipy_and_ignores_missing_values() -> None:
    rng = np.random.default_rng(0)
    reference, current = rng.normal(size=300), rng.normal(0.2, 1, 250)
    expected = sps.ks_2samp(reference, current)
    assert ks_test(reference, current) == pytest.approx((expected.statistic, expected.pvalue))
    assert ks_test(np.r_[reference, np.nan], current) == ks_test(reference, current)


def test_chi_square_compares_counts_on_the_reference_categories_plus_unseen() -> None:
    reference = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    current = ["a"] * 40 + ["b"] * 40 + ["c"] * 10 + ["new"] * 10
    statistic, p, _ = chi_square_test(reference, current)
    expected = sps.chi2_contingency([[60, 30, 10, 0], [40, 40, 10, 10]], correction=False)
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)
    assert chi_square_test(["a"] * 5, ["a"] * 7)[:2] == (0.0, 1.0)


def _features(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    data = {f"x{i}": rng.normal(size=n) for i in range(10)}
    data["x3"] = data["x3"] + shift
    return data


def test_false_alarms_on_reference_data_stay_at_the_configured_rate() -> None:
    rng = np.random.default_rng(13)
    runs, alarms, uncorrected = 300, 0, 0
    for run in range(runs):
        # A small MMD keeps this fast; its permutation p-value is exact at any size.
        report = detect_drift(
            _features(rng, 300), _features(rng, 300), ALPHA, seed=run,
            permutations=19, max_samples=60,
        )  # fmt: skip
        alarms += report.drifted
        uncorrected += min(f.p_value for f in report.features) < ALPHA
    # Not significantly above alpha with correction; far above it without (about 40%).
    assert rate_bounds(alarms, runs)[0] <= ALPHA
    assert rate_bounds(uncorrected, runs)[0] > ALPHA


def test_a_half_sd_shift_in_one_feature_of_ten_is_found_with_10000_samples() -> None:
    rng = np.random.default_rng(14)
    report = detect_drift(_features(rng, 10_000), _features(rng, 10_000, shift=0.5))
    assert report.drifted
    assert [f.name for f in report.features if f.drifted] == ["x3"]
    shifted = next(f for f in report.features if f.name == "x3")
    assert shifted.test == "ks"
    assert shifted.psi > 0.1
    assert report.multivariate is not None
    assert report.multivariate_p_adjusted is not None


def test_categorical_features_by_type_or_by_name() -> None:
    rng = np.random.default_rng(15)
    reference = {"plan": rng.choice(["free", "pro"], 2000, p=[0.8, 0.2]),
                 "code": rng.choice([1, 2, 3], 2000)}  # fmt: skip
    current = {"plan": rng.choice(["free", "pro"], 2000, p=[0.7, 0.3]),
               "code": rng.choice([1, 2, 3], 2000)}  # fmt: skip
    report = detect_drift(reference, current, categorical={"code"})
    assert {f.name: f.test for f in report.features} == {"plan": "chi_square", "code": "chi_square"}
    assert [f.name for f in report.features if f.drifted] == ["plan"]
    assert report.multivariate is None


def test_mismatched_features_are_refused() -> None:
    with pytest.raises(ValueError, match=r"current: expected the reference's features \['a'\]"):
        detect_drift({"a": [1.0, 2.0]}, {"b": [1.0, 2.0]})
