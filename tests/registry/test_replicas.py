"""Several server processes on one PostgreSQL registry, and a registry outage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.postgres import PostgresCluster
from fixtures.servers import Server, replica_servers

pytestmark = pytest.mark.slow
X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


def served_version(server: Server) -> str:
    r = httpx.post(f"{server.url}/v2/models/linear/infer", json=X, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-model-version"]


def wait_for(predicate, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout_s} s")


@pytest.fixture
def replicas(postgres: PostgresCluster, repo: Path, tmp_path: Path) -> Iterator[list[Server]]:
    url = postgres.create_database(f"replicas_{tmp_path.name[-20:]}".replace("-", "_"))
    with replica_servers(repo, tmp_path, url) as servers:
        yield servers


def test_promotion_reaches_every_replica_within_5_s(replicas: list[Server]) -> None:
    a, b = replicas
    assert served_version(a) == served_version(b) == "2"
    r = httpx.post(f"{a.url}/v1/models/linear/versions/1/promote", timeout=30)
    assert r.status_code == 200, r.text
    assert served_version(a) == "1"  # the replica that took the call swapped before answering
    elapsed = wait_for(lambda: served_version(b) == "1", timeout_s=5)
    assert elapsed < 5
    shown = httpx.get(f"{b.url}/v1/models/linear").json()
    assert shown["production_version"] == 1


def test_registry_restart_during_serving(replicas: list[Server], postgres: PostgresCluster) -> None:
    a, _ = replicas
    postgres.stop_server()  # the database goes away under the running servers
    try:
        for _ in range(20):
            assert served_version(a) == "2"  # serving goes on with what is loaded
        r = httpx.post(f"{a.url}/v1/models/linear/versions/1/promote", timeout=30)
        assert r.status_code == 503
        assert "registry database unavailable" in r.json()["error"]
        assert r.headers["retry-after"] == "2"
    finally:
        postgres.start_server()
    wait_for(lambda: httpx.get(f"{a.url}/v1/models", timeout=10).status_code == 200, 20)
    r = httpx.post(f"{a.url}/v1/models/linear/versions/1/promote", timeout=30)
    assert r.status_code == 200, r.text
    assert served_version(a) == "1"
