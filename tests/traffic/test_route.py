"""Routes: the arm a request counts for, and how an answer names it (parameters, headers)."""

from __future__ import annotations

import numpy as np

from inferd.stats import Aggregate
from inferd.traffic.canary import CanaryRoute
from inferd.traffic.route import Route
from inferd.types import InferenceResponse


def answer() -> InferenceResponse:
    return InferenceResponse("m", "1", {"y": np.array([1.0, 3.0], dtype=np.float32)})


def test_an_experiment_route_names_the_experiment_and_variant() -> None:
    response = answer()
    response.parameters["served_from"] = "cache"
    Route("1", "exp-1", "b", Aggregate(), "u", True).annotate(response)
    assert response.parameters == {
        "served_from": "cache", "experiment_id": "exp-1", "experiment_variant": "b"
    }  # fmt: skip
    assert response.headers == ((b"inferd-experiment-variant", b"b"),)


def test_a_rollout_route_names_the_rollout_and_arm_and_samples_the_answer() -> None:
    # The generative routes answer without V2 parameters: they send route.headers as they are.
    route = CanaryRoute("2", "ro-1", "canary", Aggregate())
    assert route.headers == ((b"inferd-rollout-arm", b"canary"),)
    response = answer()
    route.annotate(response)
    assert response.parameters == {"rollout_id": "ro-1", "rollout_arm": "canary"}
    assert response.headers == route.headers
    assert (route.prediction.count, route.prediction.total) == (1, 2.0)  # the answer's mean


def test_a_route_counts_failures_as_its_kind_does() -> None:
    experiment, rollout = Route("1", "e", "a", Aggregate()), CanaryRoute("1", "r", "a", Aggregate())
    for status in (200, 404, 503):
        experiment.count(status, 5.0)
        rollout.count(status, 5.0)
    assert (experiment.tally.count, experiment.tally.conversions) == (3, 2)  # any 4xx or 5xx
    assert (rollout.tally.count, rollout.tally.conversions) == (3, 1)  # a bad body is no arm's
