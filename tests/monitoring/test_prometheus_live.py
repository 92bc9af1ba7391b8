"""A real Prometheus scraping a real `inferd serve --workers 2`: exactly 100 requests read as
100, a p99 query equal to the histogram's, an alert going pending then firing, and
Alertmanager calling a webhook with it. Bounded: about 30 s on an idle machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.prometheus import Alertmanager, Prometheus, Webhook, require_binary, started
from fixtures.servers import Server
from prometheus_client.parser import text_string_to_metric_families

from inferd.monitoring.quantiles import histogram_quantile

RULES = Path(__file__).parents[2] / "deploy" / "prometheus"
REQUESTS = 100
BODY = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}
TEST_RULE = """
groups:
  - name: inferd-test
    rules:
      - alert: InferdTestTraffic
        expr: sum(inferd_requests_total{model="linear"}) >= 100
        for: 3s
        labels: {severity: info}
"""


def _poll(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def _histogram_p99(server: Server) -> tuple[float, float]:
    """p99 and count of linear's latency histogram, from inferd's own /metrics."""
    buckets: dict[float, float] = {}
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name != "inferd_request_duration_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket") and s.labels["model"] == "linear":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    bounds = sorted(buckets)
    return histogram_quantile(0.99, bounds, [buckets[b] for b in bounds]), buckets[bounds[-1]]


def test_prometheus_scrapes_alerts_and_alertmanager_calls_the_webhook(
    repo: Path, tmp_path: Path
) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    (tmp_path / "test_rules.yml").write_text(TEST_RULE)
    rules = [RULES / "alerts.yml", RULES / "recording.yml", tmp_path / "test_rules.yml"]
    home = tmp_path / "home"
    home.mkdir()
    with (
        Webhook() as hook,
        started(Alertmanager(tmp_path, hook.url)) as am,
        Server(repo, home, workers=2) as server,
    ):
        target = server.url.removeprefix("http://")
        am_host = am.url.removeprefix("http://")
        with started(Prometheus(tmp_path, [target], rules, am_host)) as prom:
            assert isinstance(prom, Prometheus)
            for _ in range(REQUESTS):  # a connection each: both workers answer
                with httpx.Client() as client:
                    r = client.post(f"{server.url}/v2/models/linear/versions/1/infer", json=BODY)
                    assert r.status_code == 200, r.text
            total = 'sum(inferd_requests_total{model="linear"})'
            _poll(
                "Prometheus reads 100 requests",
                lambda: [v for v in prom.query(total) if float(v["value"][1]) == REQUESTS],
                20,
            )
            states = []
            firing = _poll("the test alert fires", lambda: _state(prom, states) == "firing", 20)
            assert firing
            assert states[0] == "pending"  # seen before firing
            p99, count = _histogram_p99(server)
            assert count == REQUESTS
            query = ('histogram_quantile(0.99, sum by (le) '
                     '(inferd_request_duration_seconds_bucket{model="linear"}))')  # fmt: skip
            [sample] = prom.query(query)
            assert float(sample["value"][1]) == pytest.approx(p99, rel=1e-9)
            body = hook.wait_for(
                lambda b: any(a["labels"]["alertname"] == "InferdTestTraffic" for a in b["alerts"]),
                30,
            )
            assert body["status"] == "firing"
            assert body["receiver"] == "test"


def _state(prom: Prometheus, seen: list[str]) -> str | None:
    for alert in prom.alerts():
        if alert["labels"]["alertname"] == "InferdTestTraffic":
            if not seen or seen[-1] != alert["state"]:
                seen.append(alert["state"])
            return str(alert["state"])
    return None
