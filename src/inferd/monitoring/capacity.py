"""The desired-replicas hint: measured capacity against the current request rate.

With ``INFERD_CAPACITY_RPS=mlp=850,linear=4000`` (each model's requests/s one replica answers
within its SLO, from ``inferd plan replicas``), every process exports per model:

- ``inferd_capacity_rps``: that number (the same in every worker and replica);
- ``inferd_desired_replicas_hint``: the requests/s this process answered over the last
  ``window_s`` seconds divided by the capacity, i.e. the replicas its traffic alone needs.
  Workers' values add up (a replica's traffic is its workers' traffic), and so do
  replicas': ``sum(inferd_desired_replicas_hint)`` over a Deployment is the replica count
  the whole traffic needs at 100% of capacity, and summed over models the share of a
  replica each model's traffic takes.

An HPA ``Pods`` metric with an ``AverageValue`` target T on the per-pod sum proposes
``ceil(pods x average / T) = ceil(total hint / T)``: T = 0.8 keeps replicas 80% busy
(deploy/k8s/overlays/prod/hpa.yaml). Values are set when the metrics are sampled (every
10 s, and at each scrape).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Gauge

from inferd.errors import ConfigError

logger = logging.getLogger(__name__)
WINDOW_S = 30.0


def parse_capacity(text: str) -> dict[str, float]:
    """``model=rps,model=rps`` into a mapping; raises ConfigError naming the bad entry."""
    out: dict[str, float] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, value = entry.partition("=")
        try:
            rps = float(value)
        except ValueError:
            rps = -1.0
        if not sep or not name.strip() or not rps > 0:
            problem = f"expected model=requests_per_second (> 0), got {entry!r}"
            raise ConfigError("settings", "capacity_rps", problem)
        out[name.strip()] = rps
    return out


class CapacityMetrics:
    """``inferd_capacity_rps`` and ``inferd_desired_replicas_hint`` for the configured models.

    Args:
        registry: where the two gauges go.
        capacity: model -> requests/s per replica within the SLO.
        answered: model -> requests answered so far by this process (a running count).
        clock: seconds, monotonic.
        window_s: how far back the request rate looks.
    """

    def __init__(
        self, registry: CollectorRegistry, capacity: Mapping[str, float],
        answered: Callable[[], Mapping[str, int]], clock: Callable[[], float] = time.monotonic,
        window_s: float = WINDOW_S,
    ) -> None:  # fmt: skip
        self.capacity = dict(capacity)
        self.answered = answered
        self.clock = clock
        self.window_s = window_s
        self._readings: deque[tuple[float, Mapping[str, int]]] = deque()
        self.capacity_rps = Gauge(
            "inferd_capacity_rps", "Requests/s one replica answers within its SLO (configured).",
            ["model"], registry=registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self.hint = Gauge(
            "inferd_desired_replicas_hint",
            "Replicas this process's recent request rate needs at the configured capacity.",
            ["model"], registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        for model, rps in self.capacity.items():
            self.capacity_rps.labels(model).set(rps)
            self.hint.labels(model).set(0)

    def rates(self) -> dict[str, float]:
        """Requests/s per configured model over the window (0 until two readings exist)."""
        now = self.clock()
        reading = self.answered()
        self._readings.append((now, reading))
        # Keep the newest reading at or before the window's start as the baseline.
        while len(self._readings) > 1 and self._readings[1][0] <= now - self.window_s:
            self._readings.popleft()
        then, old = self._readings[0]
        span = now - then
        out = {}
        for model in self.capacity:
            # A count that went down means its versions were reloaded: no rate this time.
            delta = reading.get(model, 0) - old.get(model, 0)
            out[model] = delta / span if span > 0 and delta >= 0 else 0.0
        return out

    def sample(self) -> None:
        """Update the hint from the request rate now; failures are logged, never raised."""
        try:
            for model, rate in self.rates().items():
                self.hint.labels(model).set(rate / self.capacity[model])
        except Exception:
            logger.exception("capacity metrics: this sample failed; the next one retries")
