"""The experiment tables: lifecycle rows, revision bumps, audit, aggregates, outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from inferd.errors import Conflict, ExperimentNotFound
from inferd.registry import Registry
from inferd.registry.schema import experiment_exposures as EX
from inferd.traffic.sample_ratio import read_periods
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentStore, Exposure, Outcome

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPEC = {
    "name": "new ranker",
    "model": "m",
    "variants": [
        {"name": "control", "version": 1, "weight": 0.7},
        {"name": "treatment", "version": 2, "weight": 0.3},
    ],
}


@pytest.fixture
def store(registry_url: str) -> Iterator[ExperimentStore]:
    registry = Registry(registry_url)
    yield ExperimentStore(registry)
    registry.close()


def test_create_get_list_and_every_change_bumps_the_revision(store: ExperimentStore) -> None:
    before = store.registry.revision()
    record = store.create(parse_spec(SPEC), "alice", NOW)
    assert store.registry.revision() == before + 1
    assert (record.state, record.weights) == ("draft", [[0.7, 0.3]])
    assert (record.created_at, record.created_by) == (NOW, "alice")
    assert store.get(record.id) == record
    assert [r.id for r in store.find(model="m")] == [record.id]
    assert store.find(model="other") == []
    assert store.find(states=["running"]) == []
    running = store.transition(record.id, ["draft"], "running", "bob", NOW, started_at=NOW)
    assert (running.state, running.started_at) == ("running", NOW)
    assert store.registry.revision() == before + 2
    moved = store.set_weights(record.id, [0.5, 0.5], "bob", NOW)
    assert moved.weights == [[0.7, 0.3], [0.5, 0.5]]
    actions = [(e.action, e.actor, e.detail) for e in store.registry.audit("m")]
    assert actions[-1] == ("create_experiment", "alice", {"experiment": record.id})
    assert actions[-2][:2] == ("running_experiment", "bob")
    assert actions[0][0] == "weights_experiment"


def test_a_transition_from_the_wrong_state_is_refused_and_changes_nothing(
    store: ExperimentStore,
) -> None:
    record = store.create(parse_spec(SPEC), "alice", NOW)
    revision = store.registry.revision()
    with pytest.raises(Conflict, match="is draft; it can become paused only from running"):
        store.transition(record.id, ["running"], "paused", "bob", NOW)
    assert store.get(record.id).state == "draft"
    assert store.registry.revision() == revision
    with pytest.raises(ExperimentNotFound, match="exp-nope"):
        store.get("exp-nope")


def test_aggregates_are_upserted_per_process_and_data_does_not_bump(
    store: ExperimentStore,
) -> None:
    record = store.create(parse_spec(SPEC), "alice", NOW)
    revision = store.registry.revision()
    store.save_aggregates(record.id, "p1", {"control": {"count": 1}}, NOW)
    store.save_aggregates(record.id, "p1", {"control": {"count": 5}}, NOW)  # cumulative
    store.save_aggregates(record.id, "p2", {"control": {"count": 2}, "treatment": {"count": 3}},
                          NOW)  # fmt: skip
    found = store.aggregates(record.id)
    assert sorted(d["count"] for d in found["control"]) == [2, 5]
    assert found["treatment"] == [{"count": 3}]
    assert store.registry.revision() == revision


def test_outcomes_join_the_exposure_log_late(store: ExperimentStore) -> None:
    record = store.create(parse_spec(SPEC), "alice", NOW)
    store.add_outcomes(record.id, [
        Outcome("conversion", "control", unit="u1", value=1.0),
        Outcome("conversion", "control", unit="u2", value=0.0),
        Outcome("value", "treatment", unit="u3", value=3.0),
        Outcome("value", "treatment", unit="u4", value=5.0),
        Outcome("label", "treatment", unit="u4", label="cat"),
        Outcome("conversion", None, request_id="r1", value=1.0),
    ], NOW)  # fmt: skip
    totals, pending = store.outcome_totals(record.id)
    assert pending == 1
    assert (totals[("control", "conversion")].count, totals[("control", "conversion")].total) == (
        2, 1.0)  # fmt: skip
    value = totals[("treatment", "value")]
    assert (value.count, value.total, value.total_sq) == (2, 8.0, 34.0)
    assert totals[("treatment", "label")].labels == {"cat": 1}
    store.add_exposures(record.id, [
        Exposure("r1", "u9", "treatment", 200, 1.5, NOW),
        Exposure("r2", "u9", "treatment", 200, 1.5, NOW),
        Exposure(None, "u8", "control", 500, 1.5, NOW),
    ])  # fmt: skip
    assert store.exposure_variants(record.id, ["r1", "r3"]) == {"r1": "treatment"}
    with store.registry.connection() as conn:  # written as plain SQL: the time reads back
        times = {at.replace(tzinfo=at.tzinfo or UTC) for (at,) in conn.execute(select(EX.c.at))}
    assert times == {NOW}
    [period] = read_periods(store.registry, store.get(record.id))
    assert (period.units, period.logged) == ({"treatment": 1, "control": 1},
                                             {"treatment": 2, "control": 1})  # fmt: skip
    totals, pending = store.outcome_totals(record.id)
    assert pending == 0
    assert totals[("treatment", "conversion")].count == 1
