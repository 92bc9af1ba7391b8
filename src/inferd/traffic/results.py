"""Experiment results from the merged per-process tallies and the outcomes.

For each metric (the primary and the guards) every variant is compared with the control
(the first variant): the effect with its confidence interval, the relative lift with its
interval, a fixed-horizon p-value adjusted across the comparisons (Holm or BH, as the spec
says), this look's always-valid sequential p-value (``inferd.traffic.looks`` carries its
running minimum across looks), and whether the difference is significant. Around
that: request counts per variant, whether each reached the minimum sample size, and a
sample-ratio-mismatch check over the periods of the weight history
(``inferd.traffic.sample_ratio``).

    metric       observations             test
    conversion   outcomes kind=conversion two-proportion z
    value        outcomes kind=value      Welch's t
    label        outcomes kind=label      chi-square of variant x label (no pairwise effect)
    error_rate   routed requests          two-proportion z
    latency_ms   routed requests          Welch's t on means, Mann-Whitney U on reservoirs
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inferd.stats import (
    Aggregate,
    Comparison,
    Correction,
    Moments,
    Rate,
    adjust,
    contingency,
    mann_whitney,
    sequential_means,
    sequential_proportions,
    two_proportions,
    welch,
)
from inferd.traffic import sample_ratio
from inferd.traffic.policy import FALLBACK
from inferd.traffic.sample_ratio import WeightPeriod
from inferd.traffic.spec import LOWER_IS_BETTER
from inferd.traffic.store import ExperimentRecord, OutcomeTotals


def compute(
    record: ExperimentRecord,
    tallies: Mapping[str, list[dict[str, Any]]],
    outcomes: Mapping[tuple[str, str], OutcomeTotals],
    pending: int,
    periods: Sequence[WeightPeriod] | None = None,
) -> dict[str, Any]:
    """The results document (``GET /v1/experiments/{id}/results``).

    Args:
        record: the experiment.
        tallies: variant -> every process's tally.
        outcomes: (variant, kind) -> outcome totals.
        pending: outcomes still waiting for their request's exposure.
        periods: the weight periods with their logged units
            (:func:`inferd.traffic.sample_ratio.read_periods`); None: one period at the
            current weights with nothing logged (the SRM check uses the request counts).
    """
    spec = record.spec
    names = spec.variant_names
    merged = {name: _merge(tallies.get(name, [])) for name in [*names, FALLBACK]}
    periods = periods or [WeightPeriod(record.weights[-1])]
    srm = sample_ratio.check(names, periods, {n: merged[n].count for n in names})
    metrics = {}
    for metric in [
        spec.primary_metric,
        *[m for m in spec.guard_metrics if m != spec.primary_metric],
    ]:
        metrics[metric] = _metric(record, metric, merged, outcomes)
        metrics[metric]["primary"] = metric == spec.primary_metric
    primary = metrics[spec.primary_metric]
    reached = all(v["n"] >= spec.min_sample_size for v in primary["variants"])
    breaches = [
        f"{metric}: {c['variant']} is significantly worse than {names[0]}"
        for metric, doc in metrics.items()
        if not doc["primary"]
        for c in doc["comparisons"]
        if c["significant"] and not c["better"]
    ]
    return {
        "experiment": record.id, "model": record.model, "state": record.state,
        "control": names[0],
        "variants": [
            {"name": v.name, "version": v.version, "weight": w, "requests": merged[v.name].count,
             "errors": merged[v.name].conversions}
            for v, w in zip(spec.variants, record.weights[-1], strict=True)
        ],
        "fallback_requests": merged[FALLBACK].count,
        "srm": srm,
        "sample_size": {"minimum_per_variant": spec.min_sample_size, "reached": reached},
        "metrics": metrics,
        "guard_breaches": breaches,
        "pending_outcomes": pending,
    }  # fmt: skip


def _merge(parts: list[dict[str, Any]]) -> Aggregate:
    """Every process's tally of one variant as one (exact sums, a uniform reservoir)."""
    merged = Aggregate(seed=0)  # a fixed seed: the same rows give the same results
    for part in parts:
        merged = merged.merge(Aggregate.from_dict(part))
    return merged


def _observations(
    metric: str, name: str, merged: Mapping[str, Aggregate],
    outcomes: Mapping[tuple[str, str], OutcomeTotals],
) -> tuple[int, float, float]:  # fmt: skip
    """(n, sum, sum of squares) of one variant's observations of a metric."""
    tally = merged[name]
    if metric == "error_rate":  # 0/1 observations: an error is a "conversion"
        return tally.count, float(tally.conversions), float(tally.conversions)
    if metric == "latency_ms":
        return tally.count, tally.total, tally.total_sq
    totals = outcomes.get((name, metric), OutcomeTotals())
    return totals.count, totals.total, totals.total_sq


def _metric(
    record: ExperimentRecord, metric: str, merged: Mapping[str, Aggregate],
    outcomes: Mapping[tuple[str, str], OutcomeTotals],
) -> dict[str, Any]:  # fmt: skip
    spec = record.spec
    names = spec.variant_names
    if metric == "label":
        return _labels(names, outcomes)
    observed = {n: Moments(*_observations(metric, n, merged, outcomes)) for n in names}
    rate = metric in ("conversion", "error_rate")
    variants = [
        {"name": n, "n": observed[n].n, "mean": _num(observed[n].mean),
         "variance": _num(observed[n].variance)}
        for n in names
    ]  # fmt: skip
    comparisons = []
    for name in names[1:]:
        entry = _compare(observed[names[0]], observed[name], rate, spec.alpha)
        if metric == "latency_ms":
            entry["p_value_rank"] = _rank_p(merged[names[0]], merged[name], spec.alpha)
        comparisons.append({"variant": name, **entry, "better": _better(entry, metric)})
    _adjust(comparisons, spec.correction, spec.alpha)
    test = "two-proportion z" if rate else "Welch t"
    return {"test": test, "variants": variants, "comparisons": comparisons}


def _compare(control: Moments, treatment: Moments, rate: bool, alpha: float) -> dict[str, Any]:
    """The fixed-horizon and the sequential test of treatment against control."""
    try:
        if rate:  # 0/1 observations: the sum is the successes
            a, b = Rate(round(control.total), control.n), Rate(round(treatment.total), treatment.n)
            fixed: Comparison = two_proportions(a, b, alpha)
            sequential = sequential_proportions(a, b, alpha).p_value
        else:
            fixed = welch(control, treatment, alpha)
            sequential = sequential_means(control, treatment, alpha).p_value
    except ValueError:  # too few observations so far
        return dict.fromkeys(_FIELDS)
    return {
        "effect": _num(fixed.difference), "ci": [_num(x) for x in fixed.ci],
        "relative_lift": _num(fixed.lift),
        "relative_ci": [_num(x) for x in fixed.lift_ci] if fixed.lift_ci else None,
        "p_value": fixed.p_value, "p_value_sequential": sequential,
    }  # fmt: skip


_FIELDS = ("effect", "ci", "relative_lift", "relative_ci", "p_value", "p_value_sequential")


def _better(entry: dict[str, Any], metric: str) -> bool:
    effect = entry["effect"]
    if effect is None:
        return False
    return bool(effect < 0 if metric in LOWER_IS_BETTER else effect > 0)


def _rank_p(control: Aggregate, treatment: Aggregate, alpha: float) -> float | None:
    try:
        return mann_whitney(control.reservoir, treatment.reservoir, alpha).p_value
    except ValueError:
        return None


def _adjust(comparisons: list[dict[str, Any]], method: Correction, alpha: float) -> None:
    tested = [c for c in comparisons if c["p_value"] is not None]
    for entry in comparisons:
        entry["p_value_adjusted"] = None
        entry["significant"] = False
    if not tested:
        return
    adjusted = adjust([c["p_value"] for c in tested], method, alpha)
    for entry, p in zip(tested, adjusted.p_values, strict=True):
        entry["p_value_adjusted"] = p
        entry["significant"] = p < alpha


def _labels(names: list[str], outcomes: Mapping[tuple[str, str], OutcomeTotals]) -> dict[str, Any]:
    found = {n: outcomes.get((n, "label"), OutcomeTotals()).labels for n in names}
    labels = sorted({label for counts in found.values() for label in counts})
    table = [[found[n].get(label, 0) for label in labels] for n in names]
    return {
        "test": "chi-square",
        "variants": [{"name": n, "n": sum(found[n].values()), "counts": found[n]} for n in names],
        "comparisons": [],
        "p_value": _label_p(table),
    }


def _label_p(table: list[list[int]]) -> float | None:
    try:
        return contingency(table).p_value
    except ValueError:  # fewer than two labels or a variant without any
        return None


def _num(value: float | None) -> float | None:
    # JSON has no NaN: undefined statistics (one observation, no control mean) become null.
    return (
        None if value is None or value != value or value in (float("inf"), float("-inf")) else value
    )
