"""Alert evaluation: rules from ``alerts.yaml`` over metrics and events, once per deployment.

    AlertEvaluator
      ├─ on_drift_event / on_traffic_event   any process: events kept, written as signals
      ├─ tick()                              every evaluation_interval, in every process:
      │    1. write this process's signals          (alerts_store.alert_signals)
      │    2. take the ``alerts`` lease or stop     (registry.leases: one evaluator acts)
      │    3. snapshot the merged metrics           (alerts_metrics.MetricWindow)
      │    4. per rule: which series hold now -> pending / firing / resolved (alerts table)
      │    5. group what changed per receiver -> outbox (alert_notifications)
      │    6. deliver what is due, retrying with exponential backoff (alerts_notify)
      └─ run() / close()

A rule's condition holding makes a *pending* alert; held for the rule's ``for`` it *fires*;
a pending alert whose condition clears is dropped, a firing one is *resolved*. Event rules:
drift fires on a ``drift`` event and resolves on ``resolved``; canary breaches (a rollout
rolled back) and failed batch jobs fire once and resolve after ``resolve_after``.
Deduplication: one instance per rule and labels (its fingerprint) while active, so a
condition seen on every tick notifies once (again after a receiver's ``repeat_interval``).
Everything runs on the injected clock: tests call :meth:`tick` with a fake one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from inferd.events import DriftEvent, TrafficEvent
from inferd.monitoring.alerts_config import AlertsConfig, Receiver, Rule, load_alerts
from inferd.monitoring.alerts_metrics import MetricWindow, snapshot
from inferd.monitoring.alerts_notify import Notifier, NotifyFailed, WebhookNotifier, group_key
from inferd.monitoring.alerts_notify import payload as render
from inferd.monitoring.alerts_rules import Wanted, event_wanted, fingerprint, metric_wanted
from inferd.monitoring.alerts_store import AlertRow, AlertStore
from inferd.registry import Registry
from inferd.registry.leases import Lease
from inferd.registry.outage import OutageLog, poll
from inferd.registry.store import database_errors

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
LEASE = "alerts"
KEEP_OUTBOX_S = 7 * 86400.0  # consumed signals and finished deliveries, for debugging
PRUNE_EVERY_S = 3600.0


class AlertEvaluator:
    """Evaluates the rules and delivers notifications (see the module docstring).

    Args:
        config: the validated ``alerts.yaml``.
        store: the alerting tables.
        collect: the merged metric families (``Metrics.collect``).
        lease: the ``alerts`` lease; one process of the deployment evaluates.
        notifier: sends payloads; a :class:`WebhookNotifier` by default.
        clock: epoch seconds (the lease's clock too).
    """

    def __init__(
        self, config: AlertsConfig, store: AlertStore, collect: Callable[[], Iterable[Metric]],
        lease: Lease, *, notifier: Notifier | None = None, clock: Clock = time.time,
    ) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.collect = collect
        self.lease = lease
        self.notifier = notifier or WebhookNotifier()
        self.clock = clock
        self.window = MetricWindow()
        self._signals: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # events on the loop, flushes in a thread
        self._pruned_at = 0.0

    # -- events (any process) ----------------------------------------------------------------

    def on_drift_event(self, event: DriftEvent) -> None:
        """Drift subscriber: ``drift`` and ``resolved`` become signals (returns at once)."""
        if event.kind == "checked":
            return
        labels = {"model": event.model, "version": str(event.version)}
        detail = {"features": event.drifted_features}
        self._add("drift", f"{event.model}@{event.version}", event.kind == "drift", labels, detail)

    def on_traffic_event(self, event: TrafficEvent) -> None:
        """Rollout subscriber: a rollback is a canary breach (returns at once)."""
        if event.kind != "rollout.rolled_back":
            return
        labels = {"model": event.model, "rollout": event.rollout}
        detail = {k: v for k, v in event.detail.items() if _jsonable(v)}
        self._add("canary_breach", event.rollout, True, labels, detail)

    def _add(self, kind: str, key: str, active: bool, labels: dict[str, str],
             detail: dict[str, Any]) -> None:  # fmt: skip
        row = {"kind": kind, "key": key, "active": active, "labels": labels, "detail": detail,
               "at": self.clock()}  # fmt: skip
        with self._lock:
            self._signals.append(row)

    def flush_signals(self) -> None:
        """Write the events seen in this process since the last flush (blocking)."""
        with self._lock:
            rows, self._signals = self._signals, []
        try:
            self.store.signal(rows)
        except Exception:
            with self._lock:  # keep them for the next tick
                self._signals[:0] = rows
            raise

    # -- evaluation (the lease holder) -------------------------------------------------------

    def tick(self) -> bool:
        """One evaluation round (blocking); True when this process held the lease."""
        self.flush_signals()
        if not self.lease.acquire():
            return False
        now = self.clock()
        self.window.record(snapshot(now, self.collect()))
        signals = self.store.take_signals()
        active = self.store.active()
        changes: list[tuple[Rule, AlertRow]] = []
        for rule in self.config.rules:
            mine = {a.fingerprint: a for a in active if a.rule == rule.name}
            if rule.kind in ("drift", "canary_breach", "job_failure"):
                wanted: Wanted | None = event_wanted(rule, mine.values(), signals, now, self.store)
            else:
                wanted = metric_wanted(rule, self.window)
            if wanted is not None:
                changes += [(rule, a) for a in self._apply(rule, wanted, mine, now)]
        self._notify(changes, now)
        self.deliver(now)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self.store.prune(now - KEEP_OUTBOX_S)
            self._pruned_at = now
        return True

    def _apply(self, rule: Rule, wanted: Wanted, mine: dict[str, AlertRow],
               now: float) -> list[AlertRow]:  # fmt: skip
        """Move this rule's alerts on; returns the ones that fired or resolved now."""
        changed = []
        for labels, (value, summary) in wanted.items():
            fp = fingerprint(rule.name, dict(labels))
            alert = mine.pop(fp, None)
            if alert is None:
                alert = self._open(rule, dict(labels), value, summary, fp, now)
            else:
                alert.value, alert.summary = value, summary
            if alert.state == "pending" and now - alert.started_at >= rule.for_s:
                alert.state, alert.fired_at = "firing", now
                changed.append(alert)
            self.store.change(alert.id, now, state=alert.state, fired_at=alert.fired_at,
                              value=value, summary=summary)  # fmt: skip
        for alert in mine.values():  # condition no longer holds
            if alert.state == "pending":
                self.store.drop(alert.id)
                continue
            alert.state, alert.resolved_at = "resolved", now
            self.store.change(alert.id, now, state="resolved", resolved_at=now)
            changed.append(alert)
        return changed

    def _open(self, rule: Rule, labels: dict[str, str], value: float | None, summary: str,
              fp: str, now: float) -> AlertRow:  # fmt: skip
        values = {"fingerprint": fp, "rule": rule.name, "kind": rule.kind,
                  "severity": rule.severity, "state": "pending", "labels": labels,
                  "summary": summary, "value": value, "started_at": now}  # fmt: skip
        alert_id = self.store.open(values, now)
        return AlertRow(alert_id, fp, rule.name, rule.kind, rule.severity, "pending", labels,
                        summary, value, now, None, None, None)  # fmt: skip

    def _notify(self, changes: list[tuple[Rule, AlertRow]], now: float) -> None:
        """Group what fired or resolved (and firing alerts due a repeat) per receiver."""
        rules = {r.name: r for r in self.config.rules}
        changed = {a.id for _, a in changes}
        for alert in self.store.active():
            if alert.state == "firing" and alert.id not in changed and alert.rule in rules:
                changes.append((rules[alert.rule], alert))  # a repeat, if one is due
        notified: set[int] = set()
        for receiver in self.config.receivers:
            groups: dict[str, tuple[dict[str, str], list[AlertRow]]] = {}
            for rule, alert in changes:
                if not self._due(receiver, rule, alert, alert.id in changed, now):
                    continue
                labels = {"rule": alert.rule, "alertname": alert.rule, **alert.labels}
                group = {k: labels.get(k, "") for k in receiver.group_by}
                groups.setdefault(group_key(group), (group, []))[1].append(alert)
                notified.add(alert.id)
            for key, (group, alerts) in groups.items():
                body = render(receiver, group, alerts)
                status = "firing" if any(a.state == "firing" for a in alerts) else "resolved"
                self.store.enqueue(receiver.name, key, status, body, now)
        for alert_id in notified:
            self.store.change(alert_id, now, notified_at=now)

    def _due(self, receiver: Receiver, rule: Rule, alert: AlertRow, changed: bool,
             now: float) -> bool:  # fmt: skip
        if receiver not in self.config.receivers_of(rule):
            return False
        if alert.state == "resolved":
            return receiver.send_resolved
        if changed:
            return True
        return alert.notified_at is not None and now - alert.notified_at >= receiver.repeat_interval

    def deliver(self, now: float) -> None:
        """Send the notifications that are due; a failure is retried after ``backoff``,
        doubled each time, until the receiver's ``max_attempts``."""
        receivers = {r.name: r for r in self.config.receivers}
        for note in self.store.due(now):
            receiver = receivers.get(note.receiver)
            if receiver is None:
                self.store.delivered(note.id, "failed", note.attempts, now,
                                     "the receiver is no longer in the alerts file")  # fmt: skip
                continue
            attempts = note.attempts + 1
            try:
                self.notifier.send(receiver, note.payload)
            except NotifyFailed as err:
                last = attempts >= receiver.max_attempts
                retry_at = now + receiver.backoff * 2 ** (attempts - 1)
                logger.warning("alert notification to %s failed (try %d of %d): %s",
                               receiver.name, attempts, receiver.max_attempts, err)  # fmt: skip
                self.store.delivered(note.id, "failed" if last else "pending", attempts,
                                     retry_at, str(err))  # fmt: skip
                continue
            self.store.delivered(note.id, "sent", attempts, now)

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``evaluation_interval`` until cancelled; errors are logged, a registry
        outage once when it starts and once when it ends (not a traceback every tick)."""

        async def tick() -> None:
            with database_errors():
                await asyncio.to_thread(self.tick)

        outage = OutageLog(logger, "alert evaluation paused")
        await poll(tick, self.config.evaluation_interval, outage,
                   "alert evaluation failed; trying again next interval")  # fmt: skip

    async def close(self) -> None:
        """Write the last signals, hand the lease on, close connections."""
        try:
            await asyncio.to_thread(self.flush_signals)
            await asyncio.to_thread(self.lease.release)
        except Exception:
            logger.exception("closing the alert evaluator failed")
        self.notifier.close()


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def alert_evaluator(
    path: Path | None, store: AlertStore, collect: Callable[[], Iterable[Metric]],
    registry: Registry,
) -> AlertEvaluator | None:  # fmt: skip
    """The evaluator of a server with ``--alerts-file`` (None without one).

    Raises:
        ConfigError: the file is missing or invalid (naming the rule and field).
    """
    if path is None:
        return None
    config = load_alerts(path)
    # The holder renews every interval; another process takes over after three missed ones.
    lease = Lease(registry, LEASE, ttl_s=max(3 * config.evaluation_interval, 10.0))
    return AlertEvaluator(config, store, collect, lease)
