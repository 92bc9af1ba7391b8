"""Autoscaling on serving signals: the prod HPA asks Prometheus Adapter for metrics its rules
serve, the rules and the KEDA triggers read series inferd exports (docs/metrics.md), every
PromQL query parses with promtool, and the scaling behaviour keeps its protections."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fixtures.k8s import K8S, ROOT, find, kinds, render
from fixtures.prometheus import Prometheus, started
from fixtures.servers import Server

ADAPTER = K8S / "prometheus-adapter" / "rules.yaml"
NAME = re.compile(r"\b(inferd_[a-z0-9_]+)")
# What Prometheus Adapter puts in place of its template variables, for promtool.
WAIT_S = 30
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


def _adapter_queries(templates: dict[str, str] = TEMPLATES) -> dict[str, str]:
    """HPA metric name -> the PromQL the adapter runs for it, variables filled in."""
    queries = {}
    for rule in _rules():
        (series,) = NAME.findall(rule["seriesQuery"])
        query = rule["metricsQuery"].replace("<<.Series>>", series)
        for var, value in templates.items():
            query = query.replace(var, value)
        queries[rule["name"]["as"]] = query
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
    assert wanted == served == {"inferd_queue_depth", "inferd_request_duration_seconds_p95",
                                "inferd_desired_replicas_hint"}  # fmt: skip


def test_rules_and_triggers_read_exported_series() -> None:
    catalog = _catalog()
    assert catalog, "docs/metrics.md has no catalog table"
    text = [r["seriesQuery"] + r["metricsQuery"] for r in _rules()]
    text += [t["metadata"]["query"] for t in _keda_triggers()]
    names = {_series(n) for t in text for n in NAME.findall(t)}
    assert names, "no inferd series named"
    assert names <= catalog.keys(), f"not exported: {sorted(names - catalog.keys())}"


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    queries = [*_adapter_queries().values()] + [t["metadata"]["query"] for t in _keda_triggers()]
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


def _value(prometheus: Prometheus, query: str) -> float | None:
    found = prometheus.query(query)
    return float(found[0]["value"][1]) if found else None


def _wait_for(prometheus: Prometheus, query: str, wanted: Callable[[float], bool]) -> float:
    deadline = time.monotonic() + WAIT_S
    while (value := _value(prometheus, query)) is None or not wanted(value):
        assert time.monotonic() < deadline, f"{query!r} is {value} after {WAIT_S} s"
        time.sleep(0.2)
    return value


@pytest.mark.slow
def test_adapter_rules_answer_for_a_busy_and_an_idle_server(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "inferd").mkdir()
    (tmp_path / "prometheus").mkdir()
    with Server(repo, tmp_path / "inferd") as server:
        target = f"127.0.0.1:{server.port}"
        # A pod is an instance here; a 5 s window instead of 2 m keeps the wait short.
        fill = {"<<.LabelMatchers>>": f'instance="{target}"', "<<.GroupBy>>": "instance"}
        queries = {k: q.replace("[2m]", "[5s]") for k, q in _adapter_queries(fill).items()}
        with started(Prometheus(tmp_path / "prometheus", [target], [])) as prometheus:
            assert isinstance(prometheus, Prometheus)
            body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
            p95 = queries["inferd_request_duration_seconds_p95"]

            def busy(value: float) -> bool:
                # Requests while Prometheus scrapes: the rate needs two scrapes that differ.
                for _ in range(5):
                    url = f"{server.url}/v2/models/linear/infer"
                    httpx.post(url, json=body, timeout=10).raise_for_status()
                return value > 0

            busy(0.0)  # the histogram's series exist once a request was answered
            assert 0 < _wait_for(prometheus, p95, busy) < 10
            assert _wait_for(prometheus, queries["inferd_queue_depth"], lambda v: v >= 0) == 0
            # Idle: no request in the window; 0, not NaN and not missing.
            assert _wait_for(prometheus, p95, lambda v: v == 0) == 0
            # No INFERD_CAPACITY_RPS: no hint series, and the rule answers 0, not nothing.
            hint = queries["inferd_desired_replicas_hint"]
            assert _wait_for(prometheus, hint, lambda v: v >= 0) == 0
