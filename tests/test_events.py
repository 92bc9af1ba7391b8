"""The in-process event bus: fan-out in order, failing subscribers logged, unsubscribe, recent."""

from __future__ import annotations

import logging

import pytest

from inferd.events import DriftEvent, EventBus, TrafficEvent


def _rollback(rollout: str = "r1") -> TrafficEvent:
    return TrafficEvent("rollout.rolled_back", rollout, "mlp", 1.0, {"breaches": ["errors"]})


def test_a_failing_subscriber_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus: EventBus[TrafficEvent] = EventBus()
    seen: list[str] = []

    def broken(event: TrafficEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(lambda e: seen.append("first"))
    bus.subscribe(broken)
    bus.subscribe(lambda e: seen.append("last"))
    with caplog.at_level(logging.ERROR, logger="inferd.events"):
        bus.publish(_rollback())  # raises nothing into the publisher
    assert seen == ["first", "last"]
    (record,) = caplog.records
    message = record.getMessage()  # the event's type, the subscriber and the event's kind
    assert message.startswith("TrafficEvent subscriber <function")
    assert "broken" in message
    assert message.endswith("failed on rollout.rolled_back")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_unsubscribe_removes_its_own_subscription_once() -> None:
    bus: EventBus[DriftEvent] = EventBus()
    seen: list[DriftEvent] = []
    first = bus.subscribe(seen.append)
    bus.subscribe(seen.append)  # the same callback, twice
    first()
    first()  # a second call does nothing: the other subscription stays
    bus.publish(DriftEvent("checked", "m", 1))
    assert len(seen) == 1


def test_a_subscriber_may_unsubscribe_while_an_event_is_delivered() -> None:
    bus: EventBus[DriftEvent] = EventBus()
    seen: list[str] = []
    unsubscribe = bus.subscribe(lambda e: unsubscribe())
    bus.subscribe(lambda e: seen.append(e.kind))
    bus.publish(DriftEvent("drift", "m", 1))
    bus.publish(DriftEvent("resolved", "m", 1))
    assert seen == ["drift", "resolved"]


def test_recent_keeps_the_latest_events_only_when_asked() -> None:
    bus: EventBus[TrafficEvent] = EventBus(keep=2)
    for rollout in ("r1", "r2", "r3"):
        bus.publish(_rollback(rollout))
    assert [e.rollout for e in bus.recent] == ["r2", "r3"]
    quiet: EventBus[TrafficEvent] = EventBus()
    quiet.publish(_rollback())
    assert list(quiet.recent) == []


def test_drifted_features_name_outputs_with_a_prefix() -> None:
    event = DriftEvent("drift", "m", 1, {"features": [
        {"name": "a", "kind": "input", "drifted": True},
        {"name": "y", "kind": "output", "drifted": True},
        {"name": "b", "kind": "input", "drifted": False},
    ]})  # fmt: skip
    assert event.drifted_features == ["a", "output.y"]
    assert DriftEvent("checked", "m", 1).drifted_features == []
