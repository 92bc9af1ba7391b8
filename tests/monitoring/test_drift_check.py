"""Drift checks through the monitoring path: a stored profile, merged batches, the verdict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from inferd.monitoring.drift_check import DriftSettings, check, merge_batches
from inferd.monitoring.drift_profile import Profile

ALPHA = 0.05


def _table(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    data = {f"x[{i}]": rng.normal(size=n) for i in range(10)}
    data["x[3]"] = data["x[3]"] + shift
    return data


def _stored(rng: np.random.Generator, n: int) -> Profile:
    """A profile as the server keeps it: built, then through its JSON form."""
    profile = Profile.of(_table(rng, n), {"y": rng.normal(size=n)}, seed=int(rng.integers(1 << 30)))
    return Profile.from_dict(profile.to_dict())


def _window(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, list[Any]]:
    """``n`` sampled rows from two processes, one of whose batches overflowed."""
    table = {**_table(rng, n, shift), "output.y": rng.normal(size=n)}
    half = n // 2
    busy = {k: v[:half].tolist() for k, v in table.items()}  # kept all it sampled
    quiet = {k: v[half:].tolist() for k, v in table.items()}
    columns, _ = merge_batches([(half, busy), (n - half, quiet)], n, rng)
    return columns


def test_false_alarms_on_reference_data_stay_at_or_below_the_configured_rate() -> None:
    rng = np.random.default_rng(21)
    settings = DriftSettings(alpha=ALPHA, mmd_permutations=19, mmd_samples=100, min_samples=500)
    runs = 200
    alarms = 0
    for run in range(runs):
        result = check(_stored(rng, 5_000), _window(rng, 2_000), settings, seed=run)
        assert result["status"] in ("ok", "drift")
        alarms += result["drifted"]
    # A one-sided binomial test at 1%: this many alarms would be unlikely were the rate alpha,
    # and the test fails when the pipeline (sampling, merging, PSI threshold) inflates it.
    assert sps.binomtest(alarms, runs, ALPHA, alternative="greater").pvalue > 0.01, alarms


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_half_sd_shift_in_one_feature_of_ten_is_found_with_10000_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    result = check(_stored(rng, 20_000), _window(rng, 10_000, shift=0.5), DriftSettings())
    assert result["status"] == "drift"
    assert result["samples"] == 10_000
    shifted = [f for f in result["features"] if f["drifted"]]
    assert [f["name"] for f in shifted] == ["x[3]"]
    assert shifted[0]["test"] == "ks"
    assert shifted[0]["p_adjusted"] < 1e-6
    assert {f["kind"] for f in result["features"]} == {"input", "output"}
    assert result["multivariate"]["test"] == "mmd"


def test_prediction_drift_alone_is_found_on_the_outputs() -> None:
    rng = np.random.default_rng(4)
    window = _window(rng, 5_000)
    window["output.y"] = (np.asarray(window["output.y"]) + 0.5).tolist()
    result = check(_stored(rng, 5_000), window, DriftSettings(multivariate=False))
    assert [(f["name"], f["kind"]) for f in result["features"] if f["drifted"]] == [("y", "output")]


def test_a_small_window_gives_no_verdict() -> None:
    rng = np.random.default_rng(5)
    result = check(_stored(rng, 1_000), _window(rng, 100, 3.0), DriftSettings(min_samples=500))
    assert result["status"] == "insufficient_data"
    assert not result["drifted"]


def test_categorical_features_use_chi_square_and_a_psi_threshold_can_flag_alone() -> None:
    rng = np.random.default_rng(6)
    reference = {"plan": rng.choice(["free", "pro"], 4000, p=[0.8, 0.2])}
    profile = Profile.from_dict(Profile.of(reference).to_dict())
    window = {"plan": ["free"] * 75 + ["pro"] * 25}  # PSI about 0.015, chi-square p about 0.2
    by_test = check(profile, window, DriftSettings(min_samples=100, psi_threshold=None))
    (feature,) = by_test["features"]
    assert feature["test"] == "chi_square"
    assert feature["p_value"] > 0.05
    assert 0.005 < feature["psi"] < 0.05
    assert by_test["status"] == "ok"
    by_psi = check(profile, window, DriftSettings(min_samples=100, psi_threshold=0.005))
    assert by_psi["status"] == "drift"
    assert by_psi["features"][0]["drifted"]


def test_merge_thins_batches_to_one_share_so_every_sampled_row_counts_alike() -> None:
    rng = np.random.default_rng(7)
    # Process A sampled 10,000 rows but kept 1,000 (values 0); B sampled and kept 1,000 (1).
    batches = [(10_000, {"v": [0.0] * 1000}), (1_000, {"v": [1.0] * 1000})]
    shares = []
    for _ in range(50):
        columns, total = merge_batches(batches, 100_000, rng)
        assert total == 11_000
        shares.append(np.mean(columns["v"]))
    # B's rows are 1/11 of all sampled rows; concatenation would make them 1/2.
    assert np.mean(shares) == pytest.approx(1 / 11, abs=0.02)


def test_merge_pads_a_feature_one_batch_lacks_and_caps_the_rows() -> None:
    rng = np.random.default_rng(8)
    columns, total = merge_batches([(2, {"a": [1, 2]}), (3, {"a": [3, 4, 5], "b": [6, 7, 8]})],
                                   4, rng)  # fmt: skip
    assert total == 5
    assert len(columns["a"]) == len(columns["b"]) == 4
    assert merge_batches([], 10, rng) == ({}, 0)
