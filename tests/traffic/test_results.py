"""Experiment statistics from sufficient statistics, checked against scipy on generated data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from inferd.errors import InvalidInput
from inferd.traffic import _stats
from inferd.traffic.outcomes import parse_outcomes
from inferd.traffic.results import compute
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentRecord, OutcomeTotals
from inferd.traffic.tally import Tally


def sums(x: np.ndarray) -> tuple[int, float, float]:
    return len(x), float(x.sum()), float((x**2).sum())


def test_welch_matches_scipy_and_finds_a_five_point_difference() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(100, 15, 1000), rng.normal(95, 15, 1000)
    found = _stats.welch((1000, *_stats.mean_var(*sums(a))), (1000, *_stats.mean_var(*sums(b))),
                         0.05)  # fmt: skip
    assert found is not None
    expected = sps.ttest_ind(b, a, equal_var=False)
    assert found.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    interval = expected.confidence_interval(0.95)
    assert found.ci == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert found.p_value < 0.05
    assert found.effect < 0
    assert found.lift is not None
    assert found.lift == pytest.approx(b.mean() / a.mean() - 1)


def test_two_proportions_chi_square_and_rank_tests_match_scipy() -> None:
    found = _stats.proportions((1000, 100), (1000, 130), 0.05)
    assert found is not None
    table = np.array([[100, 900], [130, 870]])
    chi = sps.chi2_contingency(table, correction=False)
    assert found.p_value == pytest.approx(chi.pvalue, rel=1e-9)  # z^2 is the 2x2 chi-square
    assert _stats.srm_p_value([5200, 4800], [0.5, 0.5]) == pytest.approx(
        sps.chisquare([5200, 4800]).pvalue, rel=1e-12)  # fmt: skip
    assert _stats.label_p_value(table.tolist()) == pytest.approx(chi.pvalue, rel=1e-12)
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1, 200).tolist(), rng.exponential(1.3, 200).tolist()
    assert _stats.rank_p_value(a, b) == pytest.approx(
        sps.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-12)  # fmt: skip


def test_holm_and_bh_adjustments() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1, made monotone.
    assert _stats.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p * m / rank, made monotone from the top.
    assert _stats.adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_the_sequential_p_value_is_more_conservative_than_the_fixed_one() -> None:
    found = _stats.proportions((1000, 100), (1000, 130), 0.05)
    assert found is not None
    assert found.p_sequential >= found.p_value


def record(weights: list[float], **changes: Any) -> ExperimentRecord:
    body: dict[str, Any] = {
        "name": "e", "model": "m", "min_sample_size": 100,
        "variants": [{"name": "a", "version": 1, "weight": weights[0]},
                     {"name": "b", "version": 2, "weight": weights[1]}],
    }  # fmt: skip
    body.update(changes)
    spec = parse_spec(body)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return ExperimentRecord("exp-1", "e", "m", "running", spec, [weights], "salt", created_at=now)


def tally(count: int, errors: int, latency: float) -> dict[str, Any]:
    t = Tally(seed=0)
    for i in range(count):
        t.add(i >= errors, latency + (i % 7))
    return t.to_dict()


def test_results_flag_sample_ratio_mismatch_and_guard_breaches() -> None:
    tallies = {"a": [tally(3000, 30, 10.0)], "b": [tally(2000, 200, 30.0)]}
    outcomes = {("a", "conversion"): OutcomeTotals(1000, 100, 100),
                ("b", "conversion"): OutcomeTotals(50, 6, 6)}  # fmt: skip
    result = compute(record([0.5, 0.5]), tallies, outcomes, pending=3)
    assert result["srm"]["warning"] is True  # 3000 vs 2000 at 50/50
    assert result["sample_size"]["reached"] is False  # b has 50 conversions observed
    assert result["pending_outcomes"] == 3
    assert [v["requests"] for v in result["variants"]] == [3000, 2000]
    assert any(b.startswith("error_rate: b") for b in result["guard_breaches"])
    assert any(b.startswith("latency_ms: b") for b in result["guard_breaches"])
    latency = result["metrics"]["latency_ms"]["comparisons"][0]
    assert latency["p_value_rank"] < 1e-6
    assert result["srm"]["basis"] == "requests"  # no logged units to count
    balanced = compute(record([0.6, 0.4]), tallies, outcomes, pending=0)
    assert balanced["srm"]["warning"] is False
    # Heavy users skew request counts; the distinct logged units follow the weights.
    by_units = compute(record([0.5, 0.5]), tallies, outcomes, 0, units={"a": 510, "b": 490})
    assert by_units["srm"]["basis"] == "units"
    assert by_units["srm"]["observed"] == [510, 490]
    assert by_units["srm"]["warning"] is False


def test_results_with_no_data_are_null_not_errors() -> None:
    result = compute(record([0.5, 0.5], primary_metric="value"), {}, {}, pending=0)
    [comparison] = result["metrics"]["value"]["comparisons"]
    assert comparison["p_value"] is None
    assert comparison["significant"] is False
    assert result["srm"]["p_value"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unit_id": "u", "kind": "conversion", "value": 0.5}, "body.value"),
        ({"unit_id": "u", "request_id": "r", "kind": "value", "value": 1}, "body"),
        ({"kind": "value", "value": 1}, "body"),
        ({"unit_id": "u", "kind": "click", "value": 1}, "body.kind"),
        ({"outcomes": [{"unit_id": "u", "kind": "value", "value": float("inf")}]},
         r"outcomes\[0\]\.value"),
        ({"outcomes": []}, "outcomes"),
        ({"unit_id": "u", "kind": "label", "label": 3.5}, "body.label"),
    ],
)  # fmt: skip
def test_bad_outcomes_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_outcomes(body)


def test_outcomes_in_every_shape() -> None:
    one = {"unit_id": 7, "kind": "label", "label": "cat"}
    assert parse_outcomes(one)[0].unit == "7"
    assert len(parse_outcomes([one, one])) == 2
    assert parse_outcomes({"outcomes": [one]})[0].label == "cat"
