"""inferd_rollout_* metrics: the routed share per model and changes by kind."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from inferd.monitoring.rollout_metrics import RolloutMetrics


def test_share_follows_routing_and_events_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = RolloutMetrics(registry)

    def share(model: str) -> float | None:
        return registry.get_sample_value("inferd_rollout_canary_percent", {"model": model})

    metrics.routing({"a": 5.0, "b": 25.0})
    assert (share("a"), share("b")) == (5.0, 25.0)
    metrics.routing({"b": 50.0})  # a's rollout ended
    assert (share("a"), share("b")) == (0.0, 50.0)
    metrics.event("b", "rollout.rolled_back")
    metrics.event("b", "rollout.rolled_back")
    labels = {"model": "b", "event": "rolled_back"}
    assert registry.get_sample_value("inferd_rollout_events_total", labels) == 2.0
