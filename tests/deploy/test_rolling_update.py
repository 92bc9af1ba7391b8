"""Three replicas on one PostgreSQL behind HAProxy: a rolling restart with a promotion in the
middle loses no request, and a replica killed with SIGKILL loses at most one request per client
(in flight on it, or sent to it before HAProxy marked it down), which the SDK's retry recovers.

Real parts throughout: `inferd serve` processes, PostgreSQL and HAProxy from Debian, the inferd
SDK over HTTP and gRPC. bench/rolling_update.py runs the same roll for longer and prints the
throughput through it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.postgres import PostgresCluster
from fixtures.rolling import BACKENDS, Cluster, Load, throughput

from inferd.client import Client

pytestmark = pytest.mark.slow
# Each load thread waits this long between requests: steady load that leaves the replicas'
# restarts some CPU on a 2-core machine (bench/rolling_update.py runs without it).
PAUSE_S = 0.01
X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


@pytest.fixture
def cluster(postgres: PostgresCluster, repo: Path, tmp_path: Path) -> Iterator[Cluster]:
    url = postgres.create_database(f"roll_{tmp_path.name[-20:]}".replace("-", "_"))
    with Cluster(repo, tmp_path, url, count=3) as running:
        yield running


def wait_for_answers(load: Load, more: int, timeout_s: float = 30) -> None:
    """Until the load threads have ``more`` further successes between them."""
    start = sum(t.ok for t in load.tallies)
    deadline = time.monotonic() + timeout_s
    while sum(t.ok for t in load.tallies) < start + more:
        assert time.monotonic() < deadline, f"fewer than {more} answers in {timeout_s} s"
        time.sleep(0.05)


def served_version(url: str) -> str:
    r = httpx.post(f"{url}/v2/models/linear/infer", json=X, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-model-version"]


def test_rolling_restart_with_a_promotion_loses_no_request(cluster: Cluster) -> None:
    load = Load(cluster.lb.url, cluster.lb.grpc_url, threads=2, pause_s=PAUSE_S)
    start = time.monotonic()
    with load.running():
        wait_for_answers(load, 20)
        for i in range(len(cluster.servers)):
            cluster.restart(i)
            if i == 0:  # promote while one replica is new and two are old
                with Client(cluster.lb.url) as admin:
                    assert admin.promote("linear", 1)["version"] == 1
            wait_for_answers(load, 20)
    total = load.stop()
    end = time.monotonic()
    print(f"answers per second through the roll: {throughput(total.times, start, end, 1.0)}")
    print(f"versions served: {total.versions}; haproxy: {cluster.lb.counters()}")
    assert total.raw_failures == []  # none even before the SDK's retry
    assert total.failures == []
    assert total.wrong == []
    assert set(total.versions) == {"1", "2"}
    assert all(served_version(s.url) == "1" for s in cluster.servers)


def test_sigkill_loses_only_requests_in_flight_and_the_retry_recovers_them(
    cluster: Cluster,
) -> None:
    load = Load(cluster.lb.url, cluster.lb.grpc_url, threads=2, pause_s=PAUSE_S)
    with load.running():
        wait_for_answers(load, 20)
        cluster.kill(1)
        for backend in BACKENDS:
            cluster.lb.wait_up(backend, cluster.names - {"r1"})
        wait_for_answers(load, 40)
    total = load.stop()
    print(f"raw failures after SIGKILL: {len(total.raw_failures)}: {total.raw_failures}")
    print(f"haproxy: {cluster.lb.counters()}")
    # Each load thread has one request in flight at a time: at most that many were lost.
    assert len(total.raw_failures) <= len(load.urls)
    assert total.failures == []
    assert total.wrong == []
