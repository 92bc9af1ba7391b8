"""Response headers that name where the traffic policy sent a request.

An experiment's variant and a canary rollout's arm are both in the V2 response parameters
(``experiment_id`` / ``experiment_variant``, ``rollout_id`` / ``rollout_arm``: JSON and gRPC
alike); over HTTP they are also headers, so that a client of ``/predict`` or of the generative
routes, which have no V2 parameters, can tell them apart too:

    inferd-experiment-id, inferd-experiment-variant   an experiment routed the request
    inferd-rollout-id, inferd-rollout-arm             a rollout did (arm: baseline | canary)

A model runs an experiment or a rollout, never both, so at most one pair is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferd.traffic.canary import CanaryRoute
from inferd.traffic.route import Route

Headers = list[tuple[bytes, bytes]]
_PAIRS = (
    ("experiment_id", "experiment_variant", b"inferd-experiment-id", b"inferd-experiment-variant"),
    ("rollout_id", "rollout_arm", b"inferd-rollout-id", b"inferd-rollout-arm"),
)


def traffic_headers(parameters: Mapping[str, Any]) -> Headers:
    """The headers for the experiment or rollout named in a response's V2 parameters."""
    headers: Headers = []
    for id_key, arm_key, id_header, arm_header in _PAIRS:
        arm = parameters.get(arm_key)
        if arm is not None:
            headers.append((id_header, str(parameters.get(id_key, "")).encode()))
            headers.append((arm_header, str(arm).encode()))
    return headers


def route_headers(route: Route) -> Headers:
    """The same headers from the route itself (routes whose answer has no V2 parameters)."""
    _, _, id_header, arm_header = _PAIRS[1] if isinstance(route, CanaryRoute) else _PAIRS[0]
    return [(id_header, route.experiment.encode()), (arm_header, route.variant.encode())]
