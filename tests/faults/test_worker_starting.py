"""Fault: one worker of ``inferd serve --workers 2`` is still loading its models.

Workers share the ports, so the kernel hands a worker connections as soon as it listens,
whatever the readiness probe says. Here the first worker to load the model does so at once
and every later load takes 4 s: the second worker at start-up and the replacement of a killed
worker. Requests on fresh connections meanwhile must all be served by the worker that is
ready; none may get the 503 "server starting" of the one that is not. Workers started while
the registry is unreachable listen at once instead (liveness), and load once it is back.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from fixtures.models import write_python_model, xy_yaml
from fixtures.postgres import PostgresCluster
from fixtures.servers import Server

MODEL = "late"
MODEL_PY = """\
import os
import time

from inferd.runtimes.python import PythonModel

FIRST = {marker!r}


class Late(PythonModel):
    def load(self):
        try:  # the first process to get here loads at once, every other one takes 4 s
            os.close(os.open(FIRST, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(4.0)

    def infer(self, inputs):
        return {{"y": inputs["x"] * 2 + 1}}
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


def _fresh_connection_codes(url: str, seconds: float) -> list[int]:
    """Status codes of requests sent for ``seconds``, each on a new connection."""
    codes = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            codes.append(client.post(f"/v2/models/{MODEL}/infer", json=BODY).status_code)
    return codes


def test_a_worker_takes_requests_only_once_its_models_are_loaded(
    repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "first-load"
    write_python_model(repo, MODEL, MODEL_PY.format(marker=str(marker)), xy_yaml())
    with Server(repo, tmp_path, workers=2) as server:
        # The straggler at start-up: ready answers come from the first worker only.
        at_start = _fresh_connection_codes(server.url, 2.0)
        deadline = time.monotonic() + 30
        while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = server.worker_pids()
        assert len(before) == 2, before
        time.sleep(4.0)  # both loaded: the next one to load is the replacement
        os.kill(min(before), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not server.worker_pids() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.worker_pids() - before, "no replacement worker"
        # The replacement loads for 4 s; meanwhile the survivor serves every new connection.
        replacing = _fresh_connection_codes(server.url, 5.0)
    assert set(at_start) == {200}, at_start
    assert set(replacing) == {200}, replacing


def test_workers_started_during_a_registry_outage_listen_and_load_once_it_is_back(
    postgres: PostgresCluster, repo: Path, tmp_path: Path
) -> None:
    url = postgres.create_database(f"start_{tmp_path.name[-20:]}".replace("-", "_"))
    postgres.stop_server()
    server = Server(repo, tmp_path, workers=2, extra=["--registry-url", url, "--auth", "off"])
    try:
        try:
            # Liveness answers while the models cannot load (a worker that waited for the
            # registry before listening would be restarted by its liveness probe forever).
            deadline = time.monotonic() + 60
            live = None
            while live != 200 and time.monotonic() < deadline:
                try:
                    live = httpx.get(f"{server.url}/v2/health/live", timeout=5).status_code
                except httpx.TransportError:
                    time.sleep(0.2)
            assert live == 200, server.output()
            assert httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
        finally:
            postgres.start_server()
        server.wait_ready()
        answer = httpx.post(f"{server.url}/v2/models/linear/infer", json=BODY, timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    assert "loading in the background" in server.output()
