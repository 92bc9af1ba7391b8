"""Experiment statistics from sufficient statistics, checked against scipy on generated data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from inferd.errors import InvalidInput
from inferd.stats import Aggregate
from inferd.traffic.outcomes import parse_outcomes
from inferd.traffic.results import compute
from inferd.traffic.sample_ratio import WeightPeriod
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentRecord, OutcomeTotals


def test_a_five_point_difference_in_means_is_found_and_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(100, 15, 1000), rng.normal(95, 15, 1000)
    values = {"a": OutcomeTotals(1000, float(a.sum()), float((a**2).sum())),
              "b": OutcomeTotals(1000, float(b.sum()), float((b**2).sum()))}  # fmt: skip
    outcomes = {(name, "value"): totals for name, totals in values.items()}
    result = compute(record([0.5, 0.5], primary_metric="value"), {}, outcomes, pending=0)
    [found] = result["metrics"]["value"]["comparisons"]
    expected = sps.ttest_ind(b, a, equal_var=False)
    assert found["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    interval = expected.confidence_interval(0.95)
    assert found["ci"] == pytest.approx([interval.low, interval.high], rel=1e-9)
    assert found["significant"] is True
    assert found["better"] is False  # lower value than the control
    assert found["p_value_sequential"] >= found["p_value"]


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
    t = Aggregate(seed=0)
    for i in range(count):
        t.add(latency + (i % 7), converted=i < errors)  # an error counts as a conversion
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
    units = [WeightPeriod([0.5, 0.5], {"a": 510, "b": 490})]
    by_units = compute(record([0.5, 0.5]), tallies, outcomes, 0, units)
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
