"""Where the traffic policy sends one request, and how the answer is counted.

Route ── an experiment's arm (inferd.traffic.policy)
  └── CanaryRoute ── a rollout's arm (inferd.traffic.canary): 5xx only, samples answers
"""

from __future__ import annotations

from dataclasses import dataclass

from inferd.stats import Aggregate
from inferd.types import InferenceResponse


@dataclass(slots=True)
class Route:
    """Where one request goes: the version to serve and the experiment arm it counts for."""

    version: str
    experiment: str
    variant: str
    tally: Aggregate  # latency_ms values; a conversion is an error
    unit: str | None
    logged: bool  # kept in the exposure log (never for fallback requests)

    def count(self, status: int, latency_ms: float) -> None:
        """Tally the answered (or failed) request: its latency, and whether it failed."""
        self.tally.add(latency_ms, status >= 400)

    def annotate(self, response: InferenceResponse) -> None:
        """Name the experiment and variant in the response's V2 parameters."""
        response.parameters["experiment_id"] = self.experiment
        response.parameters["experiment_variant"] = self.variant
