"""An experiment's sample-ratio-mismatch check, over the periods of its weight history.

Weights may change while an experiment runs (``POST /v1/experiments/{id}/weights``). Each
weight vector is in force from the time it was set (``weight_times``, migration 18) until the
next, and the units routed in that period split by it. The check therefore splits the exposure
log by period and expects, for each variant, the sum over periods of (the period's units times
its weight): :func:`inferd.stats.check_sample_ratio_over_periods`. Comparing the total with
the newest weights alone would alarm on every healthy experiment whose split moved.

Basis, as before: distinct units of the exposure log (a unit seen in two periods counts once in
each), or, while the log holds fewer than ``SRM_MIN_UNITS``, the exact request counts of the
tallies. Those carry no times, so their expected split is the weights of each period blended by
the share of the logged (sampled) requests that fell in it; sampling does not depend on the
variant, so that share estimates the requests' own.

Replicas follow a weight change within their poll interval (1 s by default), so a few requests
just after a change are counted in the new period at the old split: negligible at the strict
0.001 threshold unless a period lasts only seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from inferd.registry import Registry
from inferd.registry.schema import experiment_exposures
from inferd.stats import check_sample_ratio, check_sample_ratio_over_periods
from inferd.traffic.store import ExperimentRecord

EX = experiment_exposures
SRM_ALPHA = 0.001  # the usual threshold: a mismatch this unlikely means broken assignment
SRM_MIN_UNITS = 100  # fewer distinct logged units: check the request counts instead


@dataclass(frozen=True, slots=True)
class WeightPeriod:
    """One weight vector's time in force, and what the exposure log holds of it.

    Attributes:
        weights: the weights in force, one per variant.
        units: variant -> distinct units logged in the period.
        logged: variant -> exposure rows (sampled requests) logged in the period.
    """

    weights: list[float]
    units: dict[str, int] = field(default_factory=dict)
    logged: dict[str, int] = field(default_factory=dict)


def read_periods(registry: Registry, record: ExperimentRecord) -> list[WeightPeriod]:
    """The experiment's weight periods with their logged units and requests (blocking).

    An experiment stored before weight times were kept is one period at its newest weights.
    """
    times = record.weight_times
    spans: list[tuple[list[float], datetime | None, datetime | None]]
    if not times or len(times) != len(record.weights):
        spans = [(record.weights[-1], None, None)]
    else:
        ends = [*times[1:], None]
        spans = [
            (w, start if i else None, end)
            for i, (w, start, end) in enumerate(zip(record.weights, times, ends, strict=True))
        ]
    periods = []
    with registry.connection() as conn:
        for weights, start, end in spans:
            stmt = select(EX.c.variant, func.count(func.distinct(EX.c.unit)), func.count()).where(
                EX.c.experiment_id == record.id
            )
            if start is not None:
                stmt = stmt.where(EX.c.at >= start)
            if end is not None:
                stmt = stmt.where(EX.c.at < end)
            rows = list(conn.execute(stmt.group_by(EX.c.variant)))
            periods.append(WeightPeriod(list(weights), {v: int(u) for v, u, _ in rows},
                                        {v: int(n) for v, _, n in rows}))  # fmt: skip
    return periods


def check(
    names: Sequence[str], periods: Sequence[WeightPeriod], requests: Mapping[str, int]
) -> dict[str, Any]:
    """The ``srm`` entry of the results document.

    Args:
        names: the variants, control first.
        periods: the weight periods, oldest first (at least one).
        requests: variant -> routed requests counted by the tallies.
    """
    counts = [[p.units.get(n, 0) for n in names] for p in periods]
    weights = [p.weights for p in periods]
    basis = "units"
    observed = [sum(c[i] for c in counts) for i in range(len(names))]
    if sum(observed) < SRM_MIN_UNITS:
        basis, observed = "requests", [requests.get(n, 0) for n in names]
    p: float | None = None
    expected: list[float] | None = None
    if sum(observed):
        try:
            if basis == "units":
                result = check_sample_ratio_over_periods(counts, weights, SRM_ALPHA)
            else:
                result = check_sample_ratio(observed, _blend(names, periods), SRM_ALPHA)
            p, expected = result.p_value, list(result.expected)
        except ValueError:  # a single arm has weight: nothing to compare
            p = None
    return {"p_value": p, "warning": p is not None and p < SRM_ALPHA, "threshold": SRM_ALPHA,
            "basis": basis, "observed": observed, "expected": expected,
            "periods": len(periods)}  # fmt: skip


def _blend(names: Sequence[str], periods: Sequence[WeightPeriod]) -> list[float]:
    """Each period's normalised weights, weighted by its share of the logged requests."""
    logged = [sum(p.logged.get(n, 0) for n in names) for p in periods]
    total = sum(logged)
    if not total:  # nothing logged to date the requests by: the newest weights
        return list(periods[-1].weights)
    blended = [0.0] * len(names)
    for period, rows in zip(periods, logged, strict=True):
        weight_sum = sum(period.weights)
        for i, w in enumerate(period.weights):
            blended[i] += rows / total * w / weight_sum
    return blended
