"""Alert evaluation on a fake clock: pending -> firing -> resolved, the 600 ms vs 500 ms case,
event rules (drift, canary breach, job failure), grouping, deduplication, retries with backoff,
one evaluator across processes (the lease); on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from inferd.events import DriftEvent, TrafficEvent
from inferd.monitoring.alerts import AlertEvaluator
from inferd.monitoring.alerts_config import Receiver, parse_alerts
from inferd.monitoring.alerts_notify import Notifier, NotifyFailed
from inferd.monitoring.alerts_store import AlertStore
from inferd.monitoring.metrics import Metrics
from inferd.registry import Registry
from inferd.registry.leases import Lease
from inferd.registry.schema import jobs


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeNotifier(Notifier):
    """Records payloads; fails the first ``failures`` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.failures = failures
        self.tries = 0

    def send(self, receiver: Receiver, payload: dict[str, Any]) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise NotifyFailed("HTTP 503: try later")
        self.sent.append((receiver.name, payload))


RULES: dict[str, Any] = {
    "evaluation_interval": "5s",
    "receivers": [
        {"name": "ops", "url": "http://127.0.0.1:9/hook", "group_by": ["rule"], "backoff": "2s",
         "max_attempts": 3},
        {"name": "chat", "kind": "slack", "url": "http://127.0.0.1:9/slack",
         "send_resolved": False},
    ],
    "rules": [
        {"name": "HighP99Latency", "kind": "latency_p99", "threshold": "500ms", "window": "30s",
         "for": "10s", "severity": "critical"},
        {"name": "HighErrorRate", "kind": "error_rate", "threshold": 0.1, "window": "1m",
         "min_requests": 5, "receivers": ["ops"]},
        {"name": "Drift", "kind": "drift", "receivers": ["ops"]},
        {"name": "CanaryBreach", "kind": "canary_breach", "resolve_after": "10m",
         "receivers": ["ops"]},
        {"name": "JobFailed", "kind": "job_failure", "resolve_after": "1h", "receivers": ["ops"]},
    ],
}  # fmt: skip


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    reg = Registry(registry_url)
    yield reg
    reg.close()


def _evaluator(registry: Registry, metrics: Metrics, clock: Clock, notifier: Notifier,
               owner: str = "a", rules: dict[str, Any] = RULES) -> AlertEvaluator:  # fmt: skip
    lease = Lease(registry, "alerts", 15.0, owner=owner, clock=clock)
    return AlertEvaluator(parse_alerts(rules), AlertStore(registry), metrics.collect, lease,
                          notifier=notifier, clock=clock)  # fmt: skip


def _traffic(metrics: Metrics, seconds: float, n: int = 20, code: int = 200) -> None:
    for _ in range(n):
        metrics.observe_request("linear", "1", "http", code, seconds, 0.0)


def test_injected_600ms_latency_fires_a_500ms_rule_within_30s(registry: Registry) -> None:
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier)
    _traffic(metrics, 0.010)
    assert evaluator.tick()  # first snapshot: nothing judged yet
    start = clock.now
    states = []
    while clock.now - start <= 30:
        clock.now += 5
        _traffic(metrics, 0.600)  # the injected latency, from ``start`` on
        evaluator.tick()
        active = evaluator.store.active()
        states.append(active[0].state if active else "none")
        if states[-1] == "firing":
            break
    assert states[0] == "pending"
    assert states[-1] == "firing"
    assert clock.now - start <= 30
    firing = evaluator.store.active()[0]
    assert firing.labels == {"model": "linear", "version": "1"}
    assert firing.value is not None
    assert 0.5 < firing.value <= 1.0
    names = [name for name, _ in notifier.sent]
    assert sorted(names) == ["chat", "ops"]  # both receivers take the rule
    ops = dict(notifier.sent)["ops"]
    assert ops["status"] == "firing"
    assert ops["alerts"][0]["labels"]["alertname"] == "HighP99Latency"
    assert "HighP99Latency" in dict(notifier.sent)["chat"]["text"]
    # Deduplicated: still firing on later ticks, no second notification.
    clock.now += 5
    _traffic(metrics, 0.600)
    evaluator.tick()
    assert len(notifier.sent) == 2
    # Fast again: resolved once the window holds only fast requests; ops hears, chat does not.
    for _ in range(8):
        clock.now += 5
        _traffic(metrics, 0.010)
        evaluator.tick()
    assert evaluator.store.active() == []
    assert [a.state for a in evaluator.store.history()] == ["resolved"]
    assert [(n, p["status"]) for n, p in notifier.sent[2:]] == [("ops", "resolved")]


def test_a_pending_alert_that_clears_never_fires(registry: Registry) -> None:
    rules = {**RULES, "rules": [{**RULES["rules"][0], "window": "5s"}]}
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier, rules=rules)
    evaluator.tick()
    clock.now += 5
    _traffic(metrics, 0.600)
    evaluator.tick()
    assert [a.state for a in evaluator.store.active()] == ["pending"]
    for _ in range(3):  # the slow requests leave the 5 s window before ``for`` (10 s)
        clock.now += 5
        _traffic(metrics, 0.010)
        evaluator.tick()
    assert evaluator.store.active() == []
    assert evaluator.store.history() == []
    assert notifier.sent == []


def test_error_rate_groups_versions_into_one_notification(registry: Registry) -> None:
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier)
    evaluator.tick()
    clock.now += 5
    for version in ("1", "2"):
        for _ in range(10):
            metrics.observe_request("linear", version, "http", 500, 0.001)
    metrics.observe_request("linear", "3", "http", 500, 0.001)  # below min_requests
    evaluator.tick()
    rows = [a for a in evaluator.store.active() if a.rule == "HighErrorRate"]
    assert sorted(a.labels["version"] for a in rows) == ["1", "2"]
    assert all(a.state == "firing" and a.value == 1.0 for a in rows)
    ops = [p for n, p in notifier.sent if n == "ops"]
    assert len(ops) == 1
    assert len(ops[0]["alerts"]) == 2
    assert ops[0]["group_labels"] == {"rule": "HighErrorRate"}


def test_drift_canary_and_job_events(registry: Registry) -> None:
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier)
    result = {"features": [{"name": "x", "kind": "input", "drifted": True}]}
    evaluator.on_drift_event(DriftEvent("checked", "linear", 1, result))  # not an alert
    evaluator.on_drift_event(DriftEvent("drift", "linear", 1, result))
    evaluator.on_traffic_event(TrafficEvent("rollout.advanced", "r1", "mlp", clock.now))
    evaluator.on_traffic_event(TrafficEvent("rollout.rolled_back", "r2", "mlp", clock.now,
                                            {"reason": "error rate 20% > 5%"}))  # fmt: skip
    with registry.transaction(bump=False) as conn:
        conn.execute(jobs.insert().values(
            id="job1", model="linear", version=1, state="failed", spec={}, pinned={},
            error="input file missing", created_at=datetime.now(UTC),
            finished_at=datetime.now(UTC),
        ))  # fmt: skip
        conn.execute(jobs.insert().values(  # failed before the rule's resolve_after: no alert
            id="old", model="linear", version=1, state="failed", spec={}, pinned={},
            error="long ago", created_at=datetime.now(UTC),
            finished_at=datetime.fromtimestamp(clock.now - 7200, UTC),
        ))  # fmt: skip
    evaluator.tick()
    active = {a.rule: a for a in evaluator.store.active()}
    assert sorted(active) == ["CanaryBreach", "Drift", "JobFailed"]
    assert all(a.state == "firing" for a in active.values())
    assert "x" in active["Drift"].summary
    assert "error rate 20% > 5%" in active["CanaryBreach"].summary
    assert active["JobFailed"].labels["job"] == "job1"
    assert len(notifier.sent) == 3  # one group per rule, to ops only
    evaluator.on_drift_event(DriftEvent("resolved", "linear", 1, {}))
    clock.now += 601  # past the canary alert's resolve_after, within the job's
    evaluator.tick()
    assert [a.rule for a in evaluator.store.active()] == ["JobFailed"]
    clock.now += 3600
    evaluator.tick()
    evaluator.tick()
    assert evaluator.store.active() == []  # the failed job is not raised again
    assert len([a for a in evaluator.store.history() if a.rule == "JobFailed"]) == 1


def test_failed_deliveries_retry_with_backoff_then_give_up(registry: Registry) -> None:
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier(failures=10)
    evaluator = _evaluator(registry, metrics, clock, notifier)
    evaluator.on_drift_event(DriftEvent("drift", "linear", 1, {}))
    evaluator.tick()
    assert notifier.tries == 1
    evaluator.tick()  # not due before the 2 s backoff
    assert notifier.tries == 1
    clock.now += 2
    evaluator.tick()
    assert notifier.tries == 2
    clock.now += 3  # the next try waits 4 s
    evaluator.tick()
    assert notifier.tries == 2
    clock.now += 1
    evaluator.tick()
    assert notifier.tries == 3
    clock.now += 100
    evaluator.tick()
    assert notifier.tries == 3  # max_attempts 3: given up
    [note] = evaluator.store.notifications()
    assert note["state"] == "failed"
    assert note["attempts"] == 3
    assert "HTTP 503" in note["last_error"]


def test_a_delivery_that_recovers_is_sent_once(registry: Registry) -> None:
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier(failures=1)
    evaluator = _evaluator(registry, metrics, clock, notifier)
    evaluator.on_drift_event(DriftEvent("drift", "linear", 1, {}))
    evaluator.tick()
    clock.now += 2
    evaluator.tick()
    clock.now += 60
    evaluator.tick()
    assert len(notifier.sent) == 1
    assert [n["state"] for n in evaluator.store.notifications()] == ["sent"]


def test_one_evaluator_acts_across_processes(registry: Registry) -> None:
    clock, metrics = Clock(), Metrics()
    first, second = FakeNotifier(), FakeNotifier()
    a = _evaluator(registry, metrics, clock, first, owner="a")
    b = _evaluator(registry, metrics, clock, second, owner="b")
    b.on_drift_event(DriftEvent("drift", "linear", 1, {}))  # seen in the other process
    assert a.tick()
    assert not b.tick()  # b only writes its signal
    assert a.tick()
    assert [x.rule for x in a.store.active()] == ["Drift"]
    assert len(first.sent) == 1
    assert second.sent == []
    clock.now += 16  # a stopped renewing: b takes over, and does not notify again
    assert b.tick()
    assert second.sent == []
    assert len(a.store.active()) == 1


def test_repeat_interval_renotifies_a_firing_alert(registry: Registry) -> None:
    rules = {**RULES, "receivers": [{"name": "ops", "url": "http://127.0.0.1:9/",
                                     "repeat_interval": "1h"}]}  # fmt: skip
    rules["rules"] = [r for r in RULES["rules"] if r["name"] == "Drift"]
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier, rules=rules)
    evaluator.on_drift_event(DriftEvent("drift", "linear", 1, {}))
    evaluator.tick()
    clock.now += 1800
    evaluator.tick()
    assert len(notifier.sent) == 1
    clock.now += 1800
    evaluator.tick()
    assert len(notifier.sent) == 2


def test_queue_depth_and_load_failures(registry: Registry) -> None:
    rules = {"rules": [
        {"name": "Backlog", "kind": "queue_depth", "threshold": 100, "for": "10s"},
        {"name": "LoadFailed", "kind": "load_failure", "window": "1m", "models": ["mlp"]},
    ]}  # fmt: skip
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier, rules=rules)
    metrics.lifecycle.load_failed("mlp", "2")  # before the first snapshot: not in any window
    evaluator.tick()
    metrics.observe_batch("linear", "1", 8, 0.01, queued=150)
    metrics.lifecycle.load_failed("mlp", "3")
    metrics.lifecycle.load_failed("linear", "1")  # not a model the rule watches
    clock.now += 5
    evaluator.tick()
    states = {(a.rule, a.labels["version"]): a.state for a in evaluator.store.active()}
    assert states == {("Backlog", "1"): "pending", ("LoadFailed", "3"): "firing"}
    clock.now += 10
    evaluator.tick()
    assert {a.rule: a.state for a in evaluator.store.active()}["Backlog"] == "firing"
    metrics.observe_batch("linear", "1", 8, 0.01, queued=3)
    clock.now += 65  # the failed load leaves the window; the queue drained
    evaluator.tick()
    assert evaluator.store.active() == []
    assert sorted(a.rule for a in evaluator.store.history()) == ["Backlog", "LoadFailed"]


def test_old_signals_and_deliveries_are_pruned(registry: Registry) -> None:
    clock, metrics, notifier = Clock(), Metrics(), FakeNotifier()
    evaluator = _evaluator(registry, metrics, clock, notifier)
    evaluator.on_drift_event(DriftEvent("drift", "linear", 1, {}))
    evaluator.tick()
    assert len(evaluator.store.notifications()) == 1
    clock.now += 8 * 86400
    evaluator.tick()
    # The first delivery is gone; the one left is the repeat (repeat_interval 4 h) sent now.
    [repeat] = evaluator.store.notifications()
    assert repeat["created_at"] == clock.now
    assert [a.rule for a in evaluator.store.active()] == ["Drift"]  # alerts stay
