"""deploy/grafana/inferd.json: every query parses with Prometheus's own parser, every metric it
names is one inferd exports, and the layout is one Grafana can place.

The queries are parsed by ``promtool check rules`` (Debian's ``prometheus`` package,
``make system-deps``): each becomes the expression of a recording rule in a throwaway rules
file, which promtool parses and type-checks offline (a range function on an instant vector
fails, as in Prometheus). Grafana's variables are replaced first: ``$__rate_interval`` and
the other intervals by a duration, ``$model`` and ``$version`` (used only inside regex
matchers) by ``.*``. Then every query runs against a real Prometheus scraping a real
`inferd serve` after traffic: matching errors (many-to-many, group_left) only show there,
and the panels over series every server exports must answer with data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fixtures.prometheus import Prometheus, started
from fixtures.servers import Server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "inferd.json"
CATALOG = ROOT / "docs" / "metrics.md"
SOURCES = ROOT / "src" / "inferd"
INTERVALS = re.compile(
    r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}"
)
VARIABLES = re.compile(r"\$\{?(model|version)\}?")
METRIC = re.compile(r"\binferd_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")
# One row per area the issue asks the dashboard to cover (row titles, lower case).
# Panels over series every serving process exports once it has answered a request.
ALWAYS_ANSWER = {
    "Requests / s", "p99 latency", "In flight", "Versions loaded", "Versions drifting",
    "Requests / s by model", "Requests / s by code", "Requests / s by protocol",
    "Request latency by model", "Queue wait and compute, p99", "Request latency distribution",
    "Mean batch size", "Batch size p50 / p95", "Queue depth", "Requests / s by version",
    "p99 latency by version", "Traffic share by version", "Memory by version", "Version state",
    "Loads and unloads", "Load time p95", "CPU cores in use", "Resident memory",
}  # fmt: skip
AREAS = ("traffic", "latency", "errors", "batch", "queue", "version", "rollout", "drift", "gpu")


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every variable's series selector."""
    found: list[tuple[str, str]] = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append(
                (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
            )
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
            expected = "label_values(selector, label)"
            assert match, f"variable {var['name']}: expected {expected}, got {var['definition']!r}"
            found.append((f"variable {var['name']}", match.group(1)))
    return found


def _promql(expr: str) -> str:
    """The query as Prometheus sees it once Grafana has filled in its variables."""
    text = VARIABLES.sub(".*", INTERVALS.sub("5m", expr))
    assert "$" not in text, f"an unknown Grafana variable is left in {expr!r}"
    return text


def _parse_errors(queries: list[tuple[str, str]], tmp: Path) -> str:
    """promtool's complaints about the queries ('' when all parse)."""
    promtool = shutil.which("promtool")
    assert promtool, "needs promtool from Debian's prometheus package: make system-deps"
    rules = [
        {"record": f"dashboard:query_{i}", "expr": _promql(expr)}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    return "" if done.returncode == 0 else done.stdout + done.stderr


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    queries = _queries(_dashboard())
    assert len(queries) >= 40
    if errors := _parse_errors(queries, tmp_path):
        # Name the queries that fail, one promtool run each (only on failure).
        bad = [
            f"{where}: {expr}"
            for where, expr in queries
            if _parse_errors([(where, expr)], tmp_path)
        ]
        pytest.fail("promtool rejects:\n" + "\n".join(bad) + "\n" + errors)


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The check above can fail: a counter without a range in rate() is refused."""
    assert "range vector" in _parse_errors([("broken", "rate(inferd_requests_total)")], tmp_path)


def _known_metrics() -> set[str]:
    """Families in the catalog (docs/metrics.md) and names created in inferd's source."""
    known = set(re.findall(r"^\| `(inferd_[a-z0-9_]+)`", CATALOG.read_text(), re.MULTILINE))
    for source in SOURCES.rglob("*.py"):
        known.update(re.findall(r"[\"'](inferd_[a-z0-9_]+)[\"']", source.read_text()))
    return known


def _family(name: str, known: set[str]) -> bool:
    """Whether ``name`` is a series of a known family (a histogram's bucket, a counter's total)."""
    stems = {name, *(name.removesuffix(s) for s in SUFFIXES if name.endswith(s))}
    return any(stem in known or f"{stem}_total" in known for stem in stems)


def test_every_metric_named_is_exported() -> None:
    known = _known_metrics()
    assert "inferd_requests_total" in known  # the catalog was read
    unknown = {
        (metric, where)
        for where, expr in _queries(_dashboard())
        for metric in METRIC.findall(expr)
        if not _family(metric, known)
    }
    assert not unknown, (
        f"metrics in {DASHBOARD.name} that neither {CATALOG.name} nor src/ has: {sorted(unknown)}"
    )


def test_layout_ids_and_areas() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, f"panel {panel['title']!r} starts left of the grid"
        assert pos["x"] + pos["w"] <= 24, f"panel {panel['title']!r} leaves the 24-column grid"
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], f"panel {panel['title']!r} has no query"
    titles = " ".join(p["title"].lower() for p in panels if p["type"] == "row")
    missing = [area for area in AREAS if area not in titles]
    assert not missing, f"no row for {missing}; rows: {titles}"


def _run(prometheus: Prometheus, expr: str) -> tuple[str | None, int]:
    """(error, series) of an instant query."""
    reply = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
    body = reply.json()
    if body["status"] != "success":
        return f"{body.get('errorType')}: {body.get('error')}", 0
    return None, len(body["data"]["result"])


@pytest.mark.slow
def test_every_query_runs_against_prometheus_scraping_inferd(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "inferd").mkdir()
    (tmp_path / "prometheus").mkdir()
    with Server(repo, tmp_path / "inferd") as server:
        target = f"127.0.0.1:{server.port}"
        with started(Prometheus(tmp_path / "prometheus", [target], [])) as prometheus:
            assert isinstance(prometheus, Prometheus)
            for i in range(20):
                for version in ("1", "2"):  # two versions, for the per-version panels
                    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                                        "data": [float(i)]}]}  # fmt: skip
                    url = f"{server.url}/v2/models/linear/versions/{version}/infer"
                    httpx.post(url, json=body, timeout=10).raise_for_status()
            seen = 'sum(inferd_requests_total{model="linear", code="200"})'
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the traffic scraped, then two more scrapes
                if (found := prometheus.query(seen)) and float(found[0]["value"][1]) >= 40:
                    break
                time.sleep(0.2)
            time.sleep(2.5)
            errors, empty = [], set()
            panels = _dashboard()["panels"]
            titles = {p["title"] for p in panels}
            assert titles >= ALWAYS_ANSWER, "a title in ALWAYS_ANSWER is gone"
            for panel in panels:
                answered = False
                for query in panel.get("targets", []):
                    error, series = _run(prometheus, _promql(query["expr"]))
                    if error:
                        errors.append(f"{panel['title']!r} {query['refId']}: {error}")
                    answered = answered or series > 0
                if panel["title"] in ALWAYS_ANSWER and not answered:
                    empty.add(panel["title"])
    assert not errors, "Prometheus refuses:\n" + "\n".join(errors)
    assert not empty, f"panels with no data after traffic: {sorted(empty)}"
