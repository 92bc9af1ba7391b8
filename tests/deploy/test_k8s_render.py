"""Every kustomization under deploy/k8s renders with kubectl's kustomize, and every object it
renders validates: Kubernetes kinds against the OpenAPI schemas of Kubernetes 1.37
(``kubernetes-validate``, strict: unknown fields fail), the custom resources against the
schemas in tests/deploy/schemas/ (KEDA, KServe, Prometheus Operator), with the Kubernetes
types they embed (containers, HPA behaviour) checked against the Kubernetes schemas too.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from fixtures.k8s import K8S, ROOT, TARGETS, find, render

KUBERNETES_VERSION = "1.37.0"
SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "clusterservingruntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule",
}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load((SCHEMAS / f"{name}.schema.yaml").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _k8s(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _pod(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
            "spec": {"containers": containers}}  # fmt: skip


def _embedded(obj: dict[str, Any]) -> None:
    """The Kubernetes types inside a custom resource, through a Pod or an HPA around them."""
    spec = obj["spec"]
    if obj["kind"] == "ClusterServingRuntime":
        _k8s(_pod(spec["containers"]))
    elif obj["kind"] == "InferenceService":
        model = spec["predictor"]["model"]
        fields = {k: model[k] for k in ("resources", "env", "args") if k in model}
        _k8s(_pod([{"name": "kserve-container", "image": "x", **fields}]))
    elif obj["kind"] == "ScaledObject":
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        if "behavior" in behavior:
            _k8s({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "check"},
                  "spec": {"scaleTargetRef": spec["scaleTargetRef"], "maxReplicas": 1,
                           "behavior": behavior["behavior"]}})  # fmt: skip


def validate(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` is not a valid object of its kind."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CUSTOM:
        jsonschema.validate(obj, _schema(CUSTOM[key]), cls=jsonschema.Draft202012Validator)
        _embedded(obj)
    else:
        _k8s(obj)


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates(target: str) -> None:
    objects = render(target)
    assert objects, f"kubectl kustomize deploy/k8s/{target} rendered nothing"
    for obj in objects:
        validate(obj)


def test_every_kustomization_is_a_tested_target() -> None:
    found = {p.parent.relative_to(K8S).as_posix() for p in K8S.rglob("kustomization.yaml")}
    assert found == set(TARGETS)


def test_a_misspelt_kubernetes_field_fails() -> None:
    deployment = copy.deepcopy(find(render("overlays/prod"), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


@pytest.mark.parametrize(
    ("target", "kind", "path", "bad"),
    [
        ("overlays/keda", "ScaledObject", ("spec",), {"minReplicas": 0}),
        ("overlays/keda", "ScaledObject", ("spec", "triggers", 0), {"metricType": "Average"}),
        ("kserve", "ClusterServingRuntime", ("spec",), {"protocolVersions": ["v3"]}),
        ("kserve", "ClusterServingRuntime", ("spec", "containers", 0), {"ports": "8080"}),
        ("kserve", "InferenceService", ("spec", "predictor", "model"), {"storageURI": "x"}),
        ("base", "ServiceMonitor", ("spec", "endpoints", 0), {"interval": "15 seconds"}),
        ("base", "PrometheusRule", ("spec", "groups", 0, "rules", 0), {"alert": "Both"}),
    ],
)
def test_a_bad_custom_resource_fails(
    target: str, kind: str, path: tuple[str | int, ...], bad: dict[str, Any]
) -> None:
    obj = copy.deepcopy(next(o for o in render(target) if o["kind"] == kind))
    part: Any = obj
    for key in path:
        part = part[key]
    part.update(bad)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(obj)


def test_prometheus_adapter_rules_validate() -> None:
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())
    jsonschema.validate(rules, _schema("prometheus-adapter"))


def test_prometheusrule_holds_the_rules_of_deploy_prometheus() -> None:
    """base/prometheusrule.yaml is generated; rerun scripts/gen_prometheusrule.py if this fails."""
    groups = []
    for name in ("recording.yml", "alerts.yml"):
        groups += yaml.safe_load((ROOT / "deploy" / "prometheus" / name).read_text())["groups"]
    assert find(render("base"), "PrometheusRule")["spec"]["groups"] == groups
