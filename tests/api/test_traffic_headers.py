"""Response headers naming an experiment's variant or a rollout's arm."""

from __future__ import annotations

from inferd.api._traffic_headers import route_headers, traffic_headers
from inferd.stats import Aggregate
from inferd.traffic.canary import CanaryRoute
from inferd.traffic.route import Route


def test_headers_from_v2_parameters_name_the_experiment_or_the_rollout() -> None:
    experiment = {"experiment_id": "exp-1", "experiment_variant": "b", "other": 1}
    assert traffic_headers(experiment) == [
        (b"inferd-experiment-id", b"exp-1"), (b"inferd-experiment-variant", b"b")
    ]  # fmt: skip
    rollout = {"rollout_id": "ro-1", "rollout_arm": "canary"}
    assert traffic_headers(rollout) == [
        (b"inferd-rollout-id", b"ro-1"), (b"inferd-rollout-arm", b"canary")
    ]  # fmt: skip
    assert traffic_headers({"served_from": "cache"}) == []


def test_headers_from_a_route_tell_a_rollout_arm_from_an_experiment_variant() -> None:
    # The generative routes answer without V2 parameters: the route names itself.
    arm = CanaryRoute("2", "ro-1", "canary", Aggregate(), None, False)
    assert route_headers(arm) == [(b"inferd-rollout-id", b"ro-1"),
                                  (b"inferd-rollout-arm", b"canary")]  # fmt: skip
    variant = Route("1", "exp-1", "a", Aggregate(), "u", True)
    assert route_headers(variant) == [(b"inferd-experiment-id", b"exp-1"),
                                      (b"inferd-experiment-variant", b"a")]  # fmt: skip
