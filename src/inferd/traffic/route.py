"""Where the traffic policy sends one request, and how the answer is counted.

Route ── an experiment's arm (inferd.traffic.policy)
  └── CanaryRoute ── a rollout's arm (inferd.traffic.canary): 5xx only, samples answers

A routed answer names its arm in the V2 response parameters (``experiment_id`` /
``experiment_variant``, ``rollout_id`` / ``rollout_arm``: JSON and gRPC alike) and, over HTTP,
in one header, so that a client of ``/predict`` or of the generative routes, which have no V2
parameters, can tell the arms apart too:

    inferd-experiment-variant   an experiment routed the request (the variant's name)
    inferd-rollout-arm          a rollout did (baseline | canary)

A model runs an experiment or a rollout, never both, and at most one of each at a time, so
the header says which arm of which: the experiment or rollout itself is the one running on the
model (``GET /v1/experiments?model=...&state=running``; its id is in the V2 parameters). One
header, not two: every header on every routed answer costs the server uvicorn's checks and its
bytes; dropping the id header moved ``bench/experiments.py`` from 0.950 to 0.961 of the
throughput with no experiment (docs/experiments.md).

Routes are made when a routing table is built, one per arm, and every request the arm serves
shares it (its headers encoded once); only a request kept in the exposure log gets a route of
its own, which carries its unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from inferd.stats import Aggregate
from inferd.types import InferenceResponse

# HTTP response headers: (name, value) pairs.
Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(slots=True)
class Route:
    """Where one request goes: the version to serve and the experiment arm it counts for."""

    ARM_HEADER: ClassVar[bytes] = b"inferd-experiment-variant"

    version: str
    experiment: str
    variant: str
    tally: Aggregate  # latency_ms values; a conversion is an error
    unit: str | None = None
    logged: bool = False  # kept in the exposure log (never for fallback requests)
    # Latencies of answered requests not yet in ``tally``: the policy folds them in on the
    # event loop (TrafficPolicy.fold); None counts each answer in ``tally`` at once.
    answers: list[float] | None = field(default=None, repr=False, compare=False)
    headers: Headers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.headers = ((self.ARM_HEADER, self.variant.encode()),)

    def count(self, status: int, latency_ms: float) -> None:
        """Tally the answered (or failed) request: its latency, and whether it failed."""
        self.tally.add(latency_ms, status >= 400)

    def annotate(self, response: InferenceResponse) -> None:
        """Name the experiment and variant in the response's V2 parameters and headers."""
        parameters = response.parameters
        parameters["experiment_id"] = self.experiment
        parameters["experiment_variant"] = self.variant
        response.headers = self.headers
