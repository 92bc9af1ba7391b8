"""Guardrails of a canary rollout: canary against baseline over the same window.

Each serving process tallies, per rollout step and arm, two :class:`~inferd.stats.Aggregate`
objects: latency (errors counted as its conversions) and the mean of each answer's first
output (the prediction sample). :func:`arm_stats` merges every process's rows of one arm;
:func:`evaluate` compares the arms:

- error rate, absolute (``max_error_rate``) and relative to the baseline
  (``max_error_rate_ratio``, beyond ``error_rate_slack``);
- p99 latency ratio (``max_p99_ratio``, beyond ``p99_slack_ms``), from the merged reservoirs;
- prediction distribution shift: the two-sample Kolmogorov-Smirnov distance of the sampled
  prediction means (``max_prediction_ks``, significant at ``ks_alpha``).

An arm is judged only once it has ``min_requests`` in the window; the relative checks need
both arms there (at the 100 % step the baseline has none, and only the absolute check holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferd.stats import Aggregate
from inferd.stats.drift import ks_test
from inferd.traffic.rollout_spec import Guardrails

ARMS = ("baseline", "canary")


@dataclass(slots=True)
class ArmStats:
    """One arm's merged tallies over a window."""

    latency: Aggregate = field(default_factory=Aggregate)
    prediction: Aggregate = field(default_factory=Aggregate)

    @property
    def requests(self) -> int:
        return self.latency.count

    @property
    def errors(self) -> int:
        return self.latency.conversions

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def p99_ms(self) -> float | None:
        sample = self.latency.reservoir
        return float(np.percentile(sample, 99)) if sample else None

    def to_dict(self) -> dict[str, Any]:
        """Counts, error rate, latency mean and p99, prediction mean (JSON-ready)."""
        lat, pred = self.latency, self.prediction
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_mean_ms": lat.total / lat.count if lat.count else None,
            "latency_p99_ms": self.p99_ms,
            "prediction_mean": pred.total / pred.count if pred.count else None,
            "predictions_sampled": len(pred.reservoir),
        }


def arm_stats(rows: Iterable[Mapping[str, Any]]) -> ArmStats:
    """Merge every process's ``{"latency": ..., "prediction": ...}`` rows of one arm."""
    merged: ArmStats | None = None
    for row in rows:
        latency = Aggregate.from_dict(row["latency"])
        prediction = Aggregate.from_dict(row["prediction"])
        if merged is None:  # the first as it is: merging into an empty one costs a resample
            merged = ArmStats(latency, prediction)
        else:
            merged = ArmStats(merged.latency.merge(latency), merged.prediction.merge(prediction))
    return merged if merged is not None else ArmStats()


def window(aggregates: Mapping[str, list[dict[str, Any]]]) -> dict[str, ArmStats]:
    """Arm -> merged stats, for the rows of :meth:`RolloutStore.aggregates`."""
    return {arm: arm_stats(aggregates.get(arm, [])) for arm in ARMS}


def evaluate(rules: Guardrails, canary: ArmStats, baseline: ArmStats) -> list[dict[str, Any]]:
    """The breaches, each ``{"guard", "canary", "baseline", "limit", "message"}``; [] if none."""
    if canary.requests < rules.min_requests:
        return []
    both = baseline.requests >= rules.min_requests
    breaches = [*_errors(rules, canary, baseline, both)]
    if both:
        breaches.extend(_latency(rules, canary, baseline))
        breaches.extend(_shift(rules, canary, baseline))
    return breaches


def _breach(guard: str, canary: float, baseline: float | None, limit: float, message: str
            ) -> dict[str, Any]:  # fmt: skip
    return {"guard": guard, "canary": canary, "baseline": baseline, "limit": limit,
            "message": message}  # fmt: skip


def _errors(
    rules: Guardrails, canary: ArmStats, baseline: ArmStats, both: bool
) -> Iterable[dict[str, Any]]:
    rate = canary.errors / canary.requests
    n = f"{canary.errors} of {canary.requests}"
    if rules.max_error_rate is not None and rate > rules.max_error_rate:
        yield _breach(
            "error_rate",
            rate,
            baseline.error_rate,
            rules.max_error_rate,
            f"canary error rate {rate:.2%} ({n}) above {rules.max_error_rate:.2%}",
        )
    if not both or rules.max_error_rate_ratio is None:
        return
    base = baseline.errors / baseline.requests
    limit = max(base * rules.max_error_rate_ratio, base + rules.error_rate_slack)
    if rate > limit:
        yield _breach("error_rate_ratio", rate, base, limit,
                      f"canary error rate {rate:.2%} ({n}) above {limit:.2%} (baseline "
                      f"{base:.2%} x {rules.max_error_rate_ratio:g})")  # fmt: skip


def _latency(rules: Guardrails, canary: ArmStats, baseline: ArmStats) -> Iterable[dict[str, Any]]:
    if rules.max_p99_ratio is None:
        return
    ours, theirs = canary.p99_ms, baseline.p99_ms
    if ours is None or theirs is None:
        return
    limit = max(theirs * rules.max_p99_ratio, theirs + rules.p99_slack_ms)
    if ours > limit:
        yield _breach("p99_latency_ratio", ours, theirs, limit,
                      f"canary p99 latency {ours:.1f} ms above {limit:.1f} ms (baseline "
                      f"{theirs:.1f} ms x {rules.max_p99_ratio:g})")  # fmt: skip


def _shift(rules: Guardrails, canary: ArmStats, baseline: ArmStats) -> Iterable[dict[str, Any]]:
    if rules.max_prediction_ks is None:
        return
    ours, theirs = canary.prediction.reservoir, baseline.prediction.reservoir
    if min(len(ours), len(theirs)) < rules.min_requests:
        return
    statistic, p_value = ks_test(theirs, ours)
    if statistic > rules.max_prediction_ks and p_value < rules.ks_alpha:
        yield _breach("prediction_shift", statistic, None, rules.max_prediction_ks,
                      f"prediction distribution shifted: KS distance {statistic:.3f} above "
                      f"{rules.max_prediction_ks:g} (p = {p_value:.2g})")  # fmt: skip
