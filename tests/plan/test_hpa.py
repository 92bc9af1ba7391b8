"""The HPA controller's arithmetic against examples worked by hand from Kubernetes' rules
(the autoscaling/v2 documentation and pkg/controller/podautoscaler), and the shipped policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from inferd.errors import ConfigError
from inferd.plan.hpa import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    SHIPPED,
    Autoscaler,
    HpaPolicy,
    MetricTarget,
    ScalingPolicy,
    ScalingRules,
    metric_proposal,
    parse_quantity,
)

ROOT = Path(__file__).resolve().parents[2]
Q = "inferd_queue_depth"


# The shipped behaviour on one metric (with the others absent a scale-down would not happen).
SHIPPED_Q = replace(SHIPPED, metrics=(MetricTarget(Q, 8.0),))


def policy(up: ScalingRules = DEFAULT_UP, down: ScalingRules = DEFAULT_DOWN, low: int = 1,
           high: int = 20) -> HpaPolicy:  # fmt: skip
    return HpaPolicy(low, high, (MetricTarget(Q, 8.0),), up, down)


def test_the_shipped_policy_is_the_prod_overlay_hpa() -> None:
    assert HpaPolicy.load(ROOT / "deploy/k8s/overlays/prod/hpa.yaml") == SHIPPED


@pytest.mark.parametrize(("text", "value"), [("250m", 0.25), ("8", 8.0), ("1.5k", 1500.0),
                                             ("2Ki", 2048.0), ("800m", 0.8)])  # fmt: skip
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


def test_a_bad_quantity_is_named() -> None:
    with pytest.raises(ConfigError, match="got 'fast'"):
        parse_quantity("fast")


def test_desired_is_ceil_of_current_times_ratio() -> None:
    # 3 pods at 16 against a target of 8: ratio 2, ceil(2 * 3) = 6.
    assert metric_proposal(3, [16, 16, 16], 8, 0.1, 0.1) == 6
    # 4 pods averaging 5: ratio 0.625, ceil(2.5) = 3.
    assert metric_proposal(4, [5, 5, 4, 6], 8, 0.1, 0.1) == 3


def test_ratios_within_the_tolerance_keep_the_count() -> None:
    assert metric_proposal(3, [8.7, 8.7, 8.7], 8, 0.1, 0.1) == 3  # ratio 1.0875
    assert metric_proposal(3, [8.9, 8.9, 8.9], 8, 0.1, 0.1) == 4  # 1.1125: ceil(3.34)
    assert metric_proposal(3, [7.3, 7.3, 7.3], 8, 0.1, 0.1) == 3  # 0.9125
    # Per-direction tolerances (behavior.scaleUp.tolerance): 5% up is enough.
    assert metric_proposal(3, [8.5, 8.5, 8.5], 8, 0.05, 0.1) == 4


def test_the_average_is_an_integer_division_of_milli_units() -> None:
    # 1m + 0 + 0 = 1m over 3 pods: 0 (not 0.33m); ratio 0 gives ceil(0) = 0.
    assert metric_proposal(3, [0.001, 0, 0], 0.001, 0.1, 0.1) == 0


def test_missing_pods_count_zero_on_a_scale_up() -> None:
    # 3 pods report 16 (ratio 2), 2 are starting: (48 + 0 + 0) / 5 = 9.6, ratio 1.2,
    # ceil(1.2 * 5) = 6 rather than ceil(2 * 3) = 6 plus the 2 already coming.
    assert metric_proposal(5, [16, 16, 16, None, None], 8, 0.1, 0.1) == 6


def test_missing_pods_count_the_target_on_a_scale_down() -> None:
    # 3 pods report 2 (ratio 0.25), 2 missing count 8: 22 / 5 = 4.4, ratio 0.55, ceil(2.75).
    assert metric_proposal(5, [2, 2, 2, None, None], 8, 0.1, 0.1) == 3


def test_filling_missing_pods_never_turns_the_direction() -> None:
    # Reported ratio 1.5 (12 vs 8); with 3 missing at 0: 24 / 5 = 4.8, ratio 0.6: no change.
    assert metric_proposal(5, [12, 12, None, None, None], 8, 0.1, 0.1) == 5
    assert metric_proposal(2, [None, None], 8, 0.1, 0.1) is None


def test_scale_up_is_limited_by_the_policies() -> None:
    # Shipped scale-up: Percent 100 and Pods 4 per 30 s, selectPolicy Max.
    scaler = Autoscaler(SHIPPED_Q)
    busy = {Q: [40.0] * 3}  # ratio 5: 15 wanted
    assert scaler.decide(0, 3, busy) == 7  # max(ceil(3 * 2) = 6, 3 + 4 = 7)
    # 15 s later the 4 added in the period still count: start 3, limit 7 again.
    assert scaler.decide(15, 7, {Q: [40.0] * 7}) == 7
    # After the period: start 7, max(14, 11) = 14; wanted ceil(5 * 7) = 35, maxReplicas 20.
    assert scaler.decide(31, 7, {Q: [40.0] * 7}) == 14
    assert scaler.decide(62, 14, {Q: [40.0] * 14}) == 20


def test_select_policy_min_takes_the_smaller_change() -> None:
    up = ScalingRules(0, "Min", (ScalingPolicy("Percent", 100, 60), ScalingPolicy("Pods", 4, 60)))
    assert Autoscaler(policy(up=up, high=50)).decide(0, 10, {Q: [80.0] * 10}) == 14  # not 20
    disabled = ScalingRules(0, "Disabled", up.policies)
    assert Autoscaler(policy(up=disabled)).decide(0, 10, {Q: [80.0] * 10}) == 10


def test_percent_scale_down_rounds_down() -> None:
    down = ScalingRules(0, "Max", (ScalingPolicy("Percent", 50, 60),))
    assert Autoscaler(policy(down=down)).decide(0, 10, {Q: [0.5] * 10}) == 5  # int(10 * 0.5)
    down = ScalingRules(0, "Max", (ScalingPolicy("Percent", 30, 60),))
    assert Autoscaler(policy(down=down)).decide(0, 5, {Q: [0.5] * 5}) == 3  # int(3.5)


def test_scale_down_waits_for_the_stabilisation_window_then_one_pod_a_minute() -> None:
    # Shipped scale-down: highest proposal of the last 300 s, Pods 1 per 60 s, min 3.
    scaler = Autoscaler(SHIPPED_Q)
    idle = {Q: [0.0] * 10}
    assert scaler.decide(0, 10, {Q: [8.0] * 10}) == 10  # at target: proposal 10
    for t in range(15, 300, 15):
        assert scaler.decide(t, 10, idle) == 10, t  # the proposal of t=0 is in the window
    # At t=300 the proposal of t=0 is exactly 300 s old: out (strictly after the cut).
    assert scaler.decide(300, 10, idle) == 9  # wanted 0, min 3, one pod per 60 s
    assert scaler.decide(315, 9, idle) == 9  # the period started at 10: limit 9
    assert scaler.decide(360, 9, idle) == 8  # t=300's change left the period
    assert scaler.decide(420, 8, idle) == 7


def test_scale_up_stabilisation_takes_the_lowest_recent_proposal() -> None:
    up = ScalingRules(60, "Max", (ScalingPolicy("Pods", 100, 15),))
    scaler = Autoscaler(policy(up=up, high=100))
    assert scaler.decide(0, 2, {Q: [8.0] * 2}) == 2
    assert scaler.decide(15, 2, {Q: [40.0] * 2}) == 2  # 10 wanted, 2 proposed at t=0
    assert scaler.decide(61, 2, {Q: [40.0] * 2}) == 10  # t=0 left the 60 s window


def test_min_and_max_replicas_apply_first() -> None:
    assert Autoscaler(SHIPPED_Q).decide(0, 25, {Q: [8.0] * 25}) == 20
    assert Autoscaler(SHIPPED_Q).decide(0, 1, {Q: [80.0]}) == 3


def test_the_largest_metric_proposal_wins() -> None:
    two = HpaPolicy(1, 20, (MetricTarget(Q, 8.0), MetricTarget("p95", 0.25)))
    values = {Q: [4.0] * 4, "p95": [0.5] * 4}  # 2 vs 8
    assert Autoscaler(two).decide(0, 4, values) == 8


def test_a_missing_metric_blocks_a_scale_down_only() -> None:
    two = HpaPolicy(1, 20, (MetricTarget(Q, 8.0), MetricTarget("p95", 0.25)), behavior=False)
    assert Autoscaler(two).decide(0, 4, {Q: [1.0] * 4}) == 4  # p95 absent: no scale-down
    assert Autoscaler(two).decide(0, 4, {Q: [16.0] * 4}) == 8  # scale-up goes ahead


def test_without_behavior_the_older_rules_apply() -> None:
    old = HpaPolicy(1, 50, (MetricTarget(Q, 8.0),), behavior=False)
    scaler = Autoscaler(old)
    assert scaler.decide(0, 3, {Q: [80.0] * 3}) == 6  # wanted 30, at most max(2 * 3, 4)
    # Idle now, but the highest proposal of 5 minutes (30) still stands: up to 2 * 6.
    assert scaler.decide(15, 6, {Q: [0.0] * 6}) == 12
    assert scaler.decide(301, 12, {Q: [0.0] * 12}) == 1  # t=0 left: no rate limit down


def test_partial_behavior_takes_the_api_defaults(tmp_path: Path) -> None:
    path = tmp_path / "hpa.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Service\n---\n"
        "kind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 5\n  metrics:\n"
        "  - type: Pods\n    pods: {metric: {name: q}, target: {type: AverageValue, "
        "averageValue: '4'}}\n  behavior:\n    scaleDown: {selectPolicy: Min}\n"
    )
    loaded = HpaPolicy.load(path)
    assert (loaded.min_replicas, loaded.max_replicas) == (1, 5)
    assert loaded.scale_up == DEFAULT_UP
    assert loaded.scale_down == ScalingRules(300, "Min", DEFAULT_DOWN.policies)


def test_an_unsupported_metric_is_named(tmp_path: Path) -> None:
    path = tmp_path / "hpa.yaml"
    path.write_text("kind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 5\n  metrics:\n"
                    "  - type: Resource\n    resource: {name: cpu}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"spec.metrics\[0\].*got 'Resource'"):
        HpaPolicy.load(path)
