"""The SRM check over weight periods: a weight change mid-experiment, through the registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from inferd.registry import Registry
from inferd.traffic.results import compute
from inferd.traffic.sample_ratio import WeightPeriod, check, read_periods
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentRecord, ExperimentStore, Exposure

T0 = datetime(2026, 1, 2, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)  # the weights move from 50/50 to 90/10
SPEC = {
    "name": "ranker", "model": "m",
    "variants": [{"name": "control", "version": 1, "weight": 0.5},
                 {"name": "treatment", "version": 2, "weight": 0.5}],
}  # fmt: skip


@pytest.fixture
def store(registry_url: str) -> Iterator[ExperimentStore]:
    registry = Registry(registry_url)
    yield ExperimentStore(registry)
    registry.close()


def log(store: ExperimentStore, exp_id: str, start: datetime, units: int, p: float) -> None:
    """``units`` distinct units after ``start``, each on treatment with probability ``p``."""
    rng = np.random.default_rng(int(p * 100) + units)
    at = start + timedelta(seconds=1)
    tag = start.isoformat()
    store.add_exposures(exp_id, [
        Exposure(None, f"{tag}-{i}", "treatment" if rng.random() < p else "control", 200, 1.0, at)
        for i in range(units)
    ])  # fmt: skip


def changed(store: ExperimentStore) -> ExperimentRecord:
    record = store.create(parse_spec(SPEC), "alice", T0)
    store.transition(record.id, ["draft"], "running", "alice", T0, started_at=T0)
    log(store, record.id, T0, 2_000, 0.5)
    moved = store.set_weights(record.id, [0.9, 0.1], "alice", T1)
    assert moved.weight_times == (T0, T1)
    assert moved.to_dict()["weight_times"] == [T0.isoformat(), T1.isoformat()]
    return moved


def test_no_alarm_when_traffic_followed_the_changed_weights(store: ExperimentStore) -> None:
    record = changed(store)
    log(store, record.id, T1, 3_000, 0.1)
    periods = read_periods(store.registry, record)
    assert [p.weights for p in periods] == [[0.5, 0.5], [0.9, 0.1]]
    assert [sum(p.units.values()) for p in periods] == [2_000, 3_000]
    srm = compute(record, {}, {}, 0, periods)["srm"]
    assert (srm["basis"], srm["periods"], srm["warning"]) == ("units", 2, False)
    assert srm["expected"] == pytest.approx([1_000 + 2_700, 1_000 + 300])
    # Against the newest weights alone the same healthy split is an alarm (what it did before).
    newest = [WeightPeriod([0.9, 0.1], {n: sum(p.units.get(n, 0) for p in periods)
                                        for n in ("control", "treatment")})]  # fmt: skip
    assert compute(record, {}, {}, 0, newest)["srm"]["warning"] is True


def test_an_alarm_when_traffic_did_not_follow_the_change(store: ExperimentStore) -> None:
    record = changed(store)
    log(store, record.id, T1, 3_000, 0.5)  # routing still splits 50/50
    srm = compute(record, {}, {}, 0, read_periods(store.registry, record))["srm"]
    assert srm["warning"] is True
    assert srm["p_value"] < 1e-50


def test_request_counts_are_expected_at_the_weights_blended_by_logged_requests() -> None:
    periods = [WeightPeriod([0.5, 0.5], logged={"a": 100, "b": 100}),
               WeightPeriod([0.9, 0.1], logged={"a": 270, "b": 30})]  # fmt: skip
    # 40% of the logged requests came at 50/50, 60% at 90/10: expect 74/26 of 1,000 requests.
    srm = check(["a", "b"], periods, {"a": 745, "b": 255})
    assert srm["basis"] == "requests"
    assert srm["expected"] == pytest.approx([740.0, 260.0])
    assert srm["warning"] is False
    assert check(["a", "b"], periods, {"a": 500, "b": 500})["warning"] is True


def test_an_experiment_stored_without_weight_times_is_one_period_at_its_newest_weights(
    store: ExperimentStore,
) -> None:
    record = changed(store)
    legacy = ExperimentRecord(record.id, record.name, record.model, record.state, record.spec,
                              record.weights, record.salt)  # fmt: skip
    [period] = read_periods(store.registry, legacy)
    assert period.weights == [0.9, 0.1]
    assert sum(period.units.values()) == 2_000
