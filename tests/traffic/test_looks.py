"""Sequential p-values carried across looks: the running minimum, in memory and in the registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from stats._sim import rate_bounds

from inferd.registry import Registry
from inferd.traffic.looks import LookStore, carry
from inferd.traffic.results import compute
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentRecord, ExperimentStore, OutcomeTotals

NOW = datetime(2026, 1, 2, tzinfo=UTC)
ALPHA = 0.05


def record(**changes: Any) -> ExperimentRecord:
    body: dict[str, Any] = {
        "name": "e", "model": "m", "primary_metric": "conversion", "guard_metrics": [],
        "variants": [{"name": "a", "version": 1, "weight": 0.5},
                     {"name": "b", "version": 2, "weight": 0.5}],
        **changes,
    }  # fmt: skip
    spec = parse_spec(body)
    return ExperimentRecord("exp-1", "e", "m", "running", spec, [spec.weights], "salt")


def conversions(a: tuple[int, int], b: tuple[int, int]) -> dict[tuple[str, str], OutcomeTotals]:
    """(successes, trials) per arm as outcome totals of 0/1 conversions."""
    return {
        (name, "conversion"): OutcomeTotals(n, float(x), float(x))
        for name, (x, n) in (("a", a), ("b", b))
    }


def look(exp: ExperimentRecord, totals: Any, previous: dict[Any, float]) -> dict[str, Any]:
    doc = compute(exp, {}, totals, pending=0)
    minima = carry(doc, previous, exp.spec.alpha)
    previous.clear()
    previous.update(minima)
    [comparison] = doc["metrics"]["conversion"]["comparisons"]
    return dict(comparison)


def test_a_later_look_never_reports_a_higher_p_value() -> None:
    exp, running = record(), {}
    first = look(exp, conversions((100, 1000), (160, 1000)), running)
    assert first["p_value_sequential"] == first["p_value_sequential_look"] < ALPHA
    assert first["significant_sequential"] is True
    # The gap closes: this look alone is not significant, the sequence stays where it was.
    second = look(exp, conversions((300, 3000), (310, 3000)), running)
    assert second["p_value_sequential_look"] > ALPHA
    assert second["p_value_sequential"] == first["p_value_sequential"]
    assert second["significant_sequential"] is True
    assert running == {("conversion", "b"): first["p_value_sequential"]}
    # A look with too little data for the test keeps the minimum rather than forgetting it.
    empty = look(exp, conversions((0, 0), (0, 0)), running)
    assert empty["p_value_sequential_look"] is None
    assert empty["p_value_sequential"] == first["p_value_sequential"]


def test_an_aa_test_looked_at_15_times_stays_within_alpha_with_the_running_minimum() -> None:
    """300 A/A experiments of conversion rate 0.1, each looked at 15 times (every 100 per arm).

    The fixed-horizon p-value read at every look finds a difference in far more than alpha of
    them; the carried sequential one, read at the last look (which is what a reader sees, and
    with the minimum carried equals "significant at any look"), in at most alpha.
    """
    rng = np.random.default_rng(20261204)
    runs, looks, block = 300, 15, 100
    exp = record()
    sequential_alarms = naive_alarms = 0
    for _ in range(runs):
        xa, xb = (rng.binomial(block, 0.1, looks).cumsum() for _ in range(2))
        running: dict[Any, float] = {}
        reported, naive = [], False
        for i in range(looks):
            n = block * (i + 1)
            found = look(exp, conversions((int(xa[i]), n), (int(xb[i]), n)), running)
            reported.append(found["p_value_sequential"])
            naive = naive or found["p_value"] < ALPHA
        assert reported == sorted(reported, reverse=True)  # never up from one look to the next
        sequential_alarms += reported[-1] < ALPHA
        naive_alarms += naive
    assert rate_bounds(sequential_alarms, runs)[1] <= ALPHA
    assert rate_bounds(naive_alarms, runs)[0] > ALPHA  # peeking at the fixed test inflates it


@pytest.fixture
def looks(registry_url: str) -> Iterator[tuple[LookStore, str]]:
    registry = Registry(registry_url)
    experiment = ExperimentStore(registry).create(record().spec, "alice", NOW)
    yield LookStore(registry), experiment.id
    registry.close()


def test_the_store_keeps_the_smallest_value_of_every_look(looks: tuple[LookStore, str]) -> None:
    store, exp_id = looks
    assert store.running(exp_id) == {}
    store.save(exp_id, {("conversion", "b"): 0.2, ("latency_ms", "b"): 0.9}, NOW)
    store.save(exp_id, {("conversion", "b"): 0.03, ("latency_ms", "b"): 0.95}, NOW)
    # A process that read before the 0.03 was stored writes its larger value: it is ignored.
    store.save(exp_id, {("conversion", "b"): 0.2}, NOW)
    assert store.running(exp_id) == {("conversion", "b"): 0.03, ("latency_ms", "b"): 0.9}
    assert store.running("exp-other") == {}
    store.save(exp_id, {}, NOW)  # nothing to store is no error
