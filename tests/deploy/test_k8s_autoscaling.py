"""Autoscaling on serving signals: the prod HPA asks Prometheus Adapter for metrics its rules
serve, the rules and the KEDA triggers read series inferd exports (docs/metrics.md), every
PromQL query parses with promtool, and the scaling behaviour keeps its protections."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.k8s import K8S, ROOT, find, kinds, render

ADAPTER = K8S / "prometheus-adapter" / "rules.yaml"
NAME = re.compile(r"\b(inferd_[a-z0-9_]+)")
# What Prometheus Adapter puts in place of its template variables, for promtool.
TEMPLATES = {"<<.LabelMatchers>>": 'namespace="inferd",pod="p"', "<<.GroupBy>>": "pod"}


def _catalog() -> dict[str, str]:
    """Exported family -> type, from the table in docs/metrics.md."""
    rows = re.findall(r"^\| `(inferd_[a-z0-9_]+)` \| (\w+) \|", (ROOT / "docs" / "metrics.md")
                      .read_text(), flags=re.M)  # fmt: skip
    return dict(rows)


def _series(name: str) -> str:
    """The family a series belongs to (a histogram's _bucket, _sum, _count)."""
    catalog = _catalog()
    for suffix in ("_bucket", "_sum", "_count"):
        family = name.removesuffix(suffix)
        if family != name and catalog.get(family) == "histogram":
            return family
    return name


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(ADAPTER.read_text())["rules"]
    return rules


def _adapter_queries() -> list[str]:
    queries = []
    for rule in _rules():
        (series,) = NAME.findall(rule["seriesQuery"])
        query = rule["metricsQuery"].replace("<<.Series>>", series)
        for var, value in TEMPLATES.items():
            query = query.replace(var, value)
        queries.append(query)
    return queries


def _keda_triggers() -> list[dict[str, Any]]:
    triggers: list[dict[str, Any]] = find(render("overlays/keda"), "ScaledObject")["spec"][
        "triggers"
    ]
    return triggers


def _promtool_errors(queries: list[str], tmp: Path) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "needs promtool from Debian's prometheus package: make system-deps"
    rules = [{"record": f"check:q{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    return "" if done.returncode == 0 else done.stdout + done.stderr


def test_hpa_metrics_are_served_by_the_adapter_rules() -> None:
    hpa = find(render("overlays/prod"), "HorizontalPodAutoscaler")
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    served = {rule["name"]["as"] for rule in _rules()}
    assert wanted == served == {"inferd_queue_depth", "inferd_request_duration_seconds_p95"}


def test_rules_and_triggers_read_exported_series() -> None:
    catalog = _catalog()
    assert catalog, "docs/metrics.md has no catalog table"
    text = [r["seriesQuery"] + r["metricsQuery"] for r in _rules()]
    text += [t["metadata"]["query"] for t in _keda_triggers()]
    names = {_series(n) for t in text for n in NAME.findall(t)}
    assert names, "no inferd series named"
    assert names <= catalog.keys(), f"not exported: {sorted(names - catalog.keys())}"


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    queries = _adapter_queries() + [t["metadata"]["query"] for t in _keda_triggers()]
    assert not _promtool_errors(queries, tmp_path)


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    assert _promtool_errors(["sum(rate(inferd_queue_depth))"], tmp_path)


@pytest.mark.parametrize("target", ["overlays/prod", "overlays/gpu"])
def test_hpa_scales_up_fast_and_down_slowly(target: str) -> None:
    behavior = find(render(target), "HorizontalPodAutoscaler")["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    down = behavior["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    # At most one pod a minute: each leaving pod drains before the next goes.
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]


def test_keda_replaces_the_hpa_and_scales_to_zero() -> None:
    objects = render("overlays/keda")
    assert "HorizontalPodAutoscaler" not in kinds(objects)
    spec = find(objects, "ScaledObject")["spec"]
    assert spec["minReplicaCount"] == 0
    assert spec["scaleTargetRef"]["name"] == find(objects, "Deployment")["metadata"]["name"]
    # At zero replicas no inferd series exists: one trigger must read something upstream.
    assert any(not NAME.search(t["metadata"]["query"]) for t in _keda_triggers())
