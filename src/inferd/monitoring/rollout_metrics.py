"""Prometheus metrics of canary rollouts, names prefixed ``inferd_rollout_``.

- ``inferd_rollout_canary_percent{model}``: the canary's share this process routes (the
  maximum over ``--workers N``; 0 once the rollout ends). Every process follows the registry
  within one poll interval, so a rollback shows here within seconds.
- ``inferd_rollout_events_total{model, event}``: changes made in this process (``started``,
  ``advanced``, ``paused``, ``resumed``, ``aborted``, ``completed``, ``promotion_refused``,
  ``rolled_back``); automatic ones are made by the lease holder, so sum over the processes::

      sum by (model) (increase(inferd_rollout_events_total{event="rolled_back"}[1h]))

Per-version request, error and latency series are the usual ``inferd_requests_*`` ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge


class RolloutMetrics:
    """The ``inferd_rollout_*`` families.

    Args:
        registry: the server's metrics registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.percent = Gauge(
            "inferd_rollout_canary_percent", "Share of the model's unversioned requests this "
            "process routes to a rollout's candidate, in %.",
            ["model"], registry=registry, multiprocess_mode="max",
        )  # fmt: skip
        self.events = Counter(
            "inferd_rollout_events", "Rollout changes made in this process, by kind.",
            ["model", "event"], registry=registry,
        )  # fmt: skip
        self._routed: set[str] = set()

    def routing(self, shares: Mapping[str, float]) -> None:
        """Set the gauges to the shares routed now (model -> %); models no longer routed: 0."""
        for model in self._routed - shares.keys():
            self.percent.labels(model).set(0.0)
        for model, percent in shares.items():
            self.percent.labels(model).set(percent)
        self._routed = set(shares)

    def event(self, model: str, kind: str) -> None:
        """Count one change: ``kind`` as a ``TrafficEvent`` names it (``rollout.advanced``)."""
        self.events.labels(model, kind.removeprefix("rollout.")).inc()
