"""Fault: the PostgreSQL registry goes away (server stopped) while inference load runs.

Serving goes on from the loaded models with no failed request; every management route
answers 503 with a clear error within a bounded time (never a 500, never a hang); the
background loops (model control, experiments, rollouts, alerts, drift) survive, the model
control loop and the alert evaluator logging the outage and the recovery; and once the
database is back, management works again without a restart, and a version added to the
repository folder during the outage is registered then.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path

import httpx
from fixtures.load import Load, http_infer
from fixtures.postgres import PostgresCluster
from fixtures.servers import Server

THREADS = 4
BOUND_S = 5.0  # the longest a management call may take while the database is down
# An alert rule, so the alert evaluator's loop runs (every 0.2 s) through the outage too.
ALERTS = """\
evaluation_interval: 200ms
receivers: [{name: ops, url: "http://127.0.0.1:9/"}]
rules: [{name: Errors, kind: error_rate, threshold: 0.5, window: 10s}]
"""
# Management calls that need the registry database: (method, path, JSON body).
MANAGEMENT = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/linear", None),
    ("GET", "/v1/models/linear/versions", None),
    ("POST", "/v1/models/linear/versions/1/promote", None),
    ("GET", "/v1/audit", None),
    ("GET", "/v1/experiments", None),
    ("GET", "/v1/rollouts", None),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/alerts", None),
    ("GET", "/v1/keys", None),
    ("GET", "/v1/models/linear/drift", None),
    ("POST", "/v2/repository/models/mlp/load", None),
    ("POST", "/v1/experiments", {"name": "e", "model": "linear", "variants": [
        {"name": "a", "version": 1, "weight": 0.5}, {"name": "b", "version": 2, "weight": 0.5}]}),
]  # fmt: skip


def _wait_for_log(server: Server, text: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in server.output():
        assert time.monotonic() < deadline, f"{text!r} not logged: {server.output()}"
        time.sleep(0.05)


def _call(client: httpx.Client, method: str, path: str, body: object) -> httpx.Response:
    started = time.monotonic()
    response = client.request(method, path, json=body)
    took = time.monotonic() - started
    assert took < BOUND_S, f"{method} {path} took {took:.1f} s"
    return response


def test_serving_survives_a_registry_outage_and_management_recovers(
    postgres: PostgresCluster, repo: Path, tmp_path: Path
) -> None:
    url = postgres.create_database(f"faults_{tmp_path.name[-20:]}".replace("-", "_"))
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(ALERTS)
    extra = ["--registry-url", url, "--log-level", "info", "--alerts-file", str(alerts)]
    server = Server(repo, tmp_path, extra=extra)
    with server, httpx.Client(base_url=server.url, timeout=BOUND_S * 2) as client:
        load = Load(
            lambda: http_infer(server.url, "linear", lambda n: [float(n)]), THREADS, pause_s=0.005
        )
        load.start().wait_for(lambda t: t.ok >= 50)
        postgres.stop_server()
        try:
            answers = {(m, p): _call(client, m, p, b) for m, p, b in MANAGEMENT * 2}
            # A version added to the repository folder meanwhile is imported once it is back.
            shutil.copytree(repo / "linear" / "1", repo / "linear" / "3")
            served = load.tally.ok
            load.wait_for(lambda t: t.ok >= served + 100 or t.ok < t.sent)  # during the outage
            # The background loops saw it (and survive: each logs the recovery below).
            _wait_for_log(server, "inferd.serving.control: models not reconciled until the")
            _wait_for_log(server, "alert evaluation paused until the registry returns")
        finally:
            postgres.start_server()
        recovered = {(m, p): _call(client, m, p, b) for m, p, b in MANAGEMENT[:3]}
        promoted = client.post("/v1/models/linear/versions/1/promote")
        load.wait_for(lambda t: t.ok >= served + 200 or t.ok < t.sent)
        _wait_for_log(server, "polls (models not reconciled)")  # the outage's end, once per loop
        _wait_for_log(server, "polls (alert evaluation paused)")
        _wait_for_log(server, "model repository: registered linear version 3")
        tally = load.stop()
        log = server.output()
    assert tally.ok == tally.sent, tally.summary()
    for (method, path), answer in answers.items():
        assert answer.status_code == 503, (method, path, answer.status_code, answer.text)
        assert "registry database unavailable" in answer.json()["error"], answer.text
        assert answer.headers["retry-after"] == "2"
    for (method, path), answer in recovered.items():
        assert answer.status_code == 200, (method, path, answer.text)
    assert promoted.status_code == 200, promoted.text
    assert "Traceback" not in log, log
    # Each loop logged the outage once, not once per poll (registry/outage.py).
    starts = Counter(re.findall(r"(\S+: [^:\n]+) until the registry returns", log))
    assert starts["inferd.serving.control: models not reconciled"] == 1, starts
    assert max(starts.values()) == 1, starts
