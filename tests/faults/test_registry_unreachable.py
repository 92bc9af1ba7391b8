"""Fault: the PostgreSQL registry goes away (server stopped) while inference load runs.

Serving goes on from the loaded models with no failed request; every management route
answers 503 with a clear error within a bounded time (never a 500, never a hang); the
background loops (model control, experiments, rollouts, alerts, drift) survive, the model
control loop logging the outage and the recovery; and once the database is back, management
works again without a restart.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from fixtures.load import Load, http_infer
from fixtures.postgres import PostgresCluster
from fixtures.servers import Server

THREADS = 4
BOUND_S = 5.0  # the longest a management call may take while the database is down
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
]


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
    server = Server(repo, tmp_path, extra=["--registry-url", url, "--log-level", "info"])
    with server, httpx.Client(base_url=server.url, timeout=BOUND_S * 2) as client:
        load = Load(lambda: http_infer(server.url, "linear", lambda n: [float(n)]), THREADS)
        load.start().wait_for(lambda t: t.ok >= 50)
        postgres.stop_server()
        try:
            answers = {(m, p): _call(client, m, p, b) for m, p, b in MANAGEMENT * 2}
            served = load.tally.ok
            load.wait_for(lambda t: t.ok >= served + 100 or t.ok < t.sent)  # during the outage
            _wait_for_log(server, "registry database unavailable")  # a background loop saw it
        finally:
            postgres.start_server()
        recovered = {(m, p): _call(client, m, p, b) for m, p, b in MANAGEMENT[:3]}
        promoted = client.post("/v1/models/linear/versions/1/promote")
        load.wait_for(lambda t: t.ok >= served + 200 or t.ok < t.sent)
        _wait_for_log(server, "registry reachable again")
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
