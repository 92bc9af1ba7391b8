"""Which label sets a rule's condition holds for now ("wanted" alerts), per rule kind.

Metric rules ask :class:`~inferd.monitoring.alerts_metrics.MetricWindow`; event rules carry
their active alerts forward and apply the signals taken this tick:

    drift          a ``drift`` signal adds model@version; a ``resolved`` signal removes it
    canary_breach  a rollback signal adds model+rollout; gone ``resolve_after`` after firing
    job_failure    each failed batch job (jobs table) fires once; gone after ``resolve_after``
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Protocol

from inferd.monitoring.alerts_config import Rule
from inferd.monitoring.alerts_metrics import MetricWindow
from inferd.monitoring.alerts_store import AlertRow, Signal

Labels = tuple[tuple[str, str], ...]
Wanted = dict[Labels, tuple[float | None, str]]  # labels -> (value, summary)


class JobSource(Protocol):
    """What job rules read (:class:`~inferd.monitoring.alerts_store.AlertStore`)."""

    def failed_jobs(self, since: float, limit: int = 100) -> list[dict[str, object]]: ...

    def known(self, fingerprints: list[str]) -> set[str]: ...


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """A stable id of one rule and label set (what deduplication keys on)."""
    text = json.dumps([rule, sorted(labels.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def labels_of(labels: dict[str, str]) -> Labels:
    """A hashable, ordered label set."""
    return tuple(sorted(labels.items()))


def metric_wanted(rule: Rule, window: MetricWindow) -> Wanted | None:
    """Series of a metric rule over its threshold; None without enough data yet."""
    found = window.breaching(rule)
    if found is None:
        return None
    wanted: Wanted = {}
    for (model, version), value in found.items():
        wanted[labels_of({"model": model, "version": version})] = (
            value, rule.summary or _metric_summary(rule, model, version, value),
        )  # fmt: skip
    return wanted


def _metric_summary(rule: Rule, model: str, version: str, value: float) -> str:
    what = f"{model} version {version}"
    limit = rule.threshold or 0.0
    if rule.kind == "latency_p99":
        return (f"p99 latency of {what} is {value * 1000:.0f} ms over the last "
                f"{rule.window:g} s (threshold {limit * 1000:.0f} ms)")  # fmt: skip
    if rule.kind == "error_rate":
        return (f"{value:.1%} of requests to {what} failed with 5xx over the last "
                f"{rule.window:g} s (threshold {limit:.1%})")  # fmt: skip
    if rule.kind == "queue_depth":
        return f"{value:g} requests are queued for {what} (threshold {limit:g})"
    return f"{value:g} failed load(s) of {what} in the last {rule.window:g} s"


def event_wanted(rule: Rule, active: Iterable[AlertRow], signals: list[Signal], now: float,
                 jobs: JobSource) -> Wanted:  # fmt: skip
    """The alerts an event rule wants after this tick's signals (see the module docstring)."""
    wanted: Wanted = {}
    for alert in active:
        since = alert.fired_at or alert.started_at
        if rule.kind != "drift" and now - since >= rule.resolve_after:
            continue
        wanted[labels_of(alert.labels)] = (alert.value, alert.summary)
    if rule.kind == "job_failure":
        _add_failed_jobs(rule, wanted, jobs, now)
        return wanted
    for signal in signals:
        if signal.kind != rule.kind or not rule.applies_to(signal.labels.get("model", "")):
            continue
        key = labels_of(signal.labels)
        if signal.active:
            wanted[key] = (None, rule.summary or _event_summary(signal))
        else:
            wanted.pop(key, None)
    return wanted


def _event_summary(signal: Signal) -> str:
    labels = signal.labels
    if signal.kind == "drift":
        features = ", ".join(str(f) for f in signal.detail.get("features", [])) or "(multivariate)"
        return f"inputs of {labels['model']} version {labels['version']} drifted: {features}"
    reason = signal.detail.get("reason") or signal.detail.get("breach") or "a guardrail breach"
    return f"rollout {labels['rollout']} of {labels['model']} was rolled back: {reason}"


def _add_failed_jobs(rule: Rule, wanted: Wanted, jobs: JobSource, now: float) -> None:
    """Jobs that failed within ``resolve_after`` and never had an alert (one per job)."""
    found: dict[str, tuple[Labels, str]] = {}
    for job in jobs.failed_jobs(now - rule.resolve_after):
        model = str(job["model"])
        if not rule.applies_to(model):
            continue
        labels = {"model": model, "version": str(job["version"]), "job": str(job["id"])}
        error = str(job["error"])[:300]
        summary = rule.summary or f"batch job {job['id']} of {model} failed: {error}"
        found[fingerprint(rule.name, labels)] = (labels_of(labels), summary)
    known = jobs.known(list(found))
    for fp, (key, summary) in found.items():
        if fp not in known and key not in wanted:
            wanted[key] = (None, summary)
