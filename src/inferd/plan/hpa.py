"""Kubernetes' HorizontalPodAutoscaler (``autoscaling/v2``), its controller's arithmetic.

:class:`HpaPolicy` is read from a manifest (``deploy/k8s/overlays/prod/hpa.yaml``) with the
API server's defaults filled in. :class:`Autoscaler` makes the controller's decision at each
sync (every 15 s in a cluster), following kube-controller-manager's
``pkg/controller/podautoscaler`` (``replica_calculator.go`` and ``horizontal.go``):

1. Per metric (``Pods``, ``AverageValue`` target): the average over the pods that reported,
   ``usage_ratio = average / target``. Within the tolerance (``1 - down <= ratio <= 1 + up``,
   0.1 each unless ``behavior.scale{Up,Down}.tolerance`` says otherwise) the proposal is the
   current replica count; otherwise ``ceil(ratio * pods that reported)``. Pods without a value
   yet (starting) count as using the target on a scale-down and 0 on a scale-up, and a proposal
   that this turns around, or into the tolerance, is dropped for the current count. Values are
   milli-units and the average is an integer division, as the controller computes them.
2. The largest proposal over the metrics wins.
3. Stabilisation: the result is the current count pulled up to the lowest proposal of the
   scale-up window and down to the highest proposal of the scale-down window (the raw
   proposals are remembered, not the results).
4. Rate limits: per direction, each policy allows ``Pods`` (+/- value) or ``Percent`` (ceil up,
   floor down) changes relative to the count at the start of its ``periodSeconds`` (changes made
   within the period are undone first); ``selectPolicy`` ``Max`` takes the policy allowing the
   largest change, ``Min`` the smallest, ``Disabled`` none. Then ``min/maxReplicas``.

Without ``behavior`` the controller's older path applies: a 300 s scale-down window and at
most ``max(2 * current, 4)`` replicas per sync.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from inferd.errors import ConfigError

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWNSCALE_WINDOW_S = 300  # --horizontal-pod-autoscaler-downscale-stabilization
_SUFFIX = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse_quantity(text: str | float, where: str = "quantity") -> float:
    """A Kubernetes quantity (``250m``, ``8``, ``1.5k``, ``2Gi``) as a float."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ConfigError(
            "hpa", where, f"expected a Kubernetes quantity like 250m or 8, got {text!r}"
        )
    return float(match[1]) * _SUFFIX[match[2] or ""]


@dataclass(frozen=True)
class ScalingPolicy:
    type: Literal["Pods", "Percent"]
    value: int
    period_s: int


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``spec.behavior``, defaults filled in."""

    stabilization_s: int
    select: Literal["Max", "Min", "Disabled"]
    policies: tuple[ScalingPolicy, ...]
    tolerance: float = TOLERANCE


DEFAULT_UP = ScalingRules(
    0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))
)
DEFAULT_DOWN = ScalingRules(DOWNSCALE_WINDOW_S, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class MetricTarget:
    """A ``Pods`` metric with an ``AverageValue`` target."""

    name: str
    average_value: float


@dataclass(frozen=True)
class HpaPolicy:
    """The parts of an HPA spec the controller's arithmetic reads."""

    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    scale_up: ScalingRules = DEFAULT_UP
    scale_down: ScalingRules = DEFAULT_DOWN
    behavior: bool = True  # False: no spec.behavior, the controller's older path

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], source: str = "hpa") -> HpaPolicy:
        """Raises ConfigError naming a field the simulator cannot use."""
        spec = manifest.get("spec") or {}
        metrics = []
        for i, metric in enumerate(spec.get("metrics") or []):
            where = f"spec.metrics[{i}]"
            target = (metric.get("pods") or {}).get("target") or {}
            if metric.get("type") != "Pods" or target.get("type") != "AverageValue":
                raise ConfigError(source, where, "expected type Pods with an AverageValue target "
                                  f"(the serving metrics), got {metric.get('type')!r}")  # fmt: skip
            name = metric["pods"]["metric"]["name"]
            metrics.append(MetricTarget(name, parse_quantity(target["averageValue"], where)))
        if not metrics:
            raise ConfigError(source, "spec.metrics", "expected at least one Pods metric, got none")
        behavior = spec.get("behavior")
        up = _rules((behavior or {}).get("scaleUp"), DEFAULT_UP, f"{source}: scaleUp")
        down = _rules((behavior or {}).get("scaleDown"), DEFAULT_DOWN, f"{source}: scaleDown")
        low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        if not 1 <= low <= high:
            raise ConfigError(
                source, "spec.minReplicas", f"expected 1 <= min <= max, got {low}, {high}"
            )
        return cls(low, high, tuple(metrics), up, down, behavior is not None)

    @classmethod
    def load(cls, path: Path) -> HpaPolicy:
        """The first HorizontalPodAutoscaler in a YAML file (several documents allowed)."""
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(str(path), "(file)", f"expected a YAML manifest: {err}") from err
        for doc in documents:
            if isinstance(doc, dict) and doc.get("kind") == "HorizontalPodAutoscaler":
                return cls.from_manifest(doc, str(path))
        raise ConfigError(str(path), "kind", "expected a HorizontalPodAutoscaler, found none")


def _rules(raw: Mapping[str, Any] | None, default: ScalingRules, where: str) -> ScalingRules:
    """API-server defaulting: each field left out takes the default rules' value."""
    if raw is None:
        return default
    policies = (
        tuple(
            ScalingPolicy(p["type"], int(p["value"]), int(p["periodSeconds"]))
            for p in raw.get("policies") or ()
        )
        or default.policies
    )
    for p in policies:
        if p.type not in ("Pods", "Percent") or p.value <= 0 or p.period_s <= 0:
            raise ConfigError(where, "policies", f"expected Pods/Percent, value > 0, got {p}")
    tolerance = raw.get("tolerance")
    return ScalingRules(
        int(raw.get("stabilizationWindowSeconds", default.stabilization_s)),
        raw.get("selectPolicy", "Max"),
        policies,
        TOLERANCE if tolerance is None else parse_quantity(tolerance, "tolerance"),
    )


def metric_proposal(
    current: int, values: Sequence[float | None], target: float, up: float, down: float
) -> int | None:
    """The replica count one metric proposes; None without any pod's value.

    Args:
        current: the target's replica count now (spec.replicas).
        values: one per pod; None for a pod without a value yet (starting).
        target: the AverageValue target.
        up, down: the tolerances above and below a ratio of 1.
    """
    milli = math.ceil(target * 1000)
    reported = [math.ceil(v * 1000 - 1e-9) for v in values if v is not None]
    missing = len(values) - len(reported)
    if not reported:
        return None
    ratio = (sum(reported) // len(reported)) / milli

    def within(r: float) -> bool:
        return 1.0 - down <= r <= 1.0 + up

    if missing == 0:
        return current if within(ratio) else math.ceil(ratio * len(reported))
    filled = reported + [milli if ratio < 1.0 else 0] * missing
    new_ratio = (sum(filled) // len(filled)) / milli
    if within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    proposal = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


@dataclass
class Autoscaler:
    """One HPA's controller: decisions at each sync, with its remembered proposals and changes.

    Args:
        policy: the HPA.
    """

    policy: HpaPolicy
    _proposals: list[tuple[float, int]] = field(default_factory=list)
    _ups: list[tuple[float, int]] = field(default_factory=list)
    _downs: list[tuple[float, int]] = field(default_factory=list)

    def decide(self, now: float, current: int, values: Mapping[str, Sequence[float | None]]) -> int:
        """The replica count the controller sets at ``now`` (seconds).

        Args:
            now: the sync's time.
            current: spec.replicas now.
            values: metric name -> one value per pod (None: no value yet).
        """
        p = self.policy
        if not self._proposals:  # the controller's first sync remembers the current count
            self._proposals.append((now, current))
        if current > p.max_replicas:
            return self._scaled(now, current, p.max_replicas)
        if current < p.min_replicas:
            return self._scaled(now, current, p.min_replicas)
        proposals = []
        for metric in p.metrics:
            got = metric_proposal(current, values.get(metric.name, ()), metric.average_value,
                                  p.scale_up.tolerance, p.scale_down.tolerance)  # fmt: skip
            if got is not None:
                proposals.append(got)
        # No value at all, or some missing while the rest would scale down: no change.
        if not proposals or (len(proposals) < len(p.metrics) and max(proposals) < current):
            return current
        wanted = max(proposals)
        desired = self._with_behavior(now, current, wanted) if p.behavior else \
            self._legacy(now, current, wanted)  # fmt: skip
        return self._scaled(now, current, desired)

    def _stabilised(self, now: float, current: int, wanted: int) -> int:
        up_cut = now - self.policy.scale_up.stabilization_s
        down_cut = now - self.policy.scale_down.stabilization_s
        upper = lower = wanted
        for when, proposal in self._proposals:
            if when > up_cut:
                lower = min(lower, proposal)
            if when > down_cut:
                upper = max(upper, proposal)
        oldest = min(up_cut, down_cut)
        self._proposals = [(w, r) for w, r in self._proposals if w > oldest]
        self._proposals.append((now, wanted))
        return min(max(current, lower), upper)

    def _with_behavior(self, now: float, current: int, wanted: int) -> int:
        p = self.policy
        desired = self._stabilised(now, current, wanted)
        if desired > current:
            limit = max(self._limit(now, current, p.scale_up, +1), current)
            return min(desired, p.max_replicas, limit)
        if desired < current:
            limit = min(self._limit(now, current, p.scale_down, -1), current)
            return max(desired, p.min_replicas, limit)
        return desired

    def _limit(self, now: float, current: int, rules: ScalingRules, sign: int) -> int:
        """Furthest count the policies allow in direction ``sign`` (+1 up, -1 down)."""
        if rules.select == "Disabled":
            return current
        proposals = []
        for policy in rules.policies:
            cut = now - policy.period_s
            added = sum(n for when, n in self._ups if when > cut)
            removed = sum(n for when, n in self._downs if when > cut)
            start = current - added + removed
            if policy.type == "Pods":
                proposals.append(start + sign * policy.value)
            elif sign > 0:
                proposals.append(math.ceil(start * (1 + policy.value / 100)))
            else:
                proposals.append(int(start * (1 - policy.value / 100)))
        most = max if (rules.select == "Max") == (sign > 0) else min
        return most(proposals)

    def _legacy(self, now: float, current: int, wanted: int) -> int:
        cut = now - DOWNSCALE_WINDOW_S
        self._proposals = [(w, r) for w, r in self._proposals if w > cut]
        self._proposals.append((now, wanted))
        stabilised = max(r for _, r in self._proposals)
        highest = min(self.policy.max_replicas, max(2 * current, 4))
        return max(self.policy.min_replicas, min(stabilised, highest))

    def _scaled(self, now: float, current: int, desired: int) -> int:
        if desired > current:
            self._ups.append((now, desired - current))
        elif desired < current:
            self._downs.append((now, current - desired))
        longest = max(r.period_s for r in (*self.policy.scale_up.policies,
                                           *self.policy.scale_down.policies))  # fmt: skip
        self._ups = [(w, n) for w, n in self._ups if w > now - longest]
        self._downs = [(w, n) for w, n in self._downs if w > now - longest]
        return desired


# deploy/k8s/overlays/prod/hpa.yaml, for `inferd plan simulate` without --hpa (a test keeps
# the two equal).
SHIPPED = HpaPolicy(
    min_replicas=3,
    max_replicas=20,
    metrics=(MetricTarget("inferd_queue_depth", 8.0),
             MetricTarget("inferd_request_duration_seconds_p95", 0.25),
             MetricTarget("inferd_desired_replicas_hint", 0.8)),
    scale_up=ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 30),
                                     ScalingPolicy("Pods", 4, 30))),
    scale_down=ScalingRules(300, "Min", (ScalingPolicy("Pods", 1, 60),)),
)  # fmt: skip
