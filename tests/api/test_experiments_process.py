"""Experiments across processes: `inferd serve --workers 2` and two replicas on one
PostgreSQL route every unit alike, and their tallies merge exactly; CLI and SDK end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.postgres import PostgresCluster
from fixtures.servers import Server

from inferd.cli.main import main
from inferd.client import Client
from inferd.registry import Registry
from inferd.settings import Settings
from inferd.traffic.store import ExperimentStore

pytestmark = pytest.mark.slow
BODY = {"model_name": "linear", "input_data": {"x": [1.0]}}


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout_s} s")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["experiments", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


class Traffic:
    """Connections to the servers, counting the requests an experiment routed."""

    def __init__(self, urls: list[str]) -> None:
        self.clients = [httpx.Client(base_url=url, timeout=30) for url in urls]
        self.routed = 0

    def variant(self, client: httpx.Client, unit: str) -> str:
        r = client.post("/predict", json={**BODY, "user_id": unit})
        assert r.status_code == 200, r.text
        found = r.headers.get("inferd-experiment-variant", "")
        self.routed += bool(found)
        return found

    def routed_everywhere(self) -> bool:
        """True once every connection (so every worker behind them) routes."""
        return all(self.variant(c, f"probe-{i}") for i, c in enumerate(self.clients))

    def check_sticky(self, units: int, repeats: int) -> None:
        seen: dict[str, set[str]] = {}
        for j in range(repeats):
            for i in range(units):  # a unit's requests go over different connections
                client = self.clients[(i + j) % len(self.clients)]
                seen.setdefault(f"user-{i}", set()).add(self.variant(client, f"user-{i}"))
        split = [u for u, v in seen.items() if len(v) > 1]
        assert split == []
        assert set().union(*seen.values()) == {"control", "treatment"}

    def close(self) -> None:
        for client in self.clients:
            client.close()


def total_requests(sdk: Client, exp_id: str) -> int:
    return sum(v["requests"] for v in sdk.experiment_results(exp_id)["variants"])


def test_two_workers_agree_on_every_unit_and_merge_their_tallies(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Server(repo, tmp_path, workers=2) as server:
        created = cli(capsys, "create", "--url", server.url, "--model", "linear",
                      "--variant", "control=1:0.7", "--variant", "treatment=2:0.3")  # fmt: skip
        exp_id = created["id"]
        with Client(server.url) as sdk:
            assert sdk.experiment_action(exp_id, "start")["state"] == "running"
        traffic = Traffic([server.url] * 16)
        try:
            wait_for(traffic.routed_everywhere, timeout_s=15)
            traffic.check_sticky(units=150, repeats=4)
        finally:
            traffic.close()
        with Client(server.url) as sdk:
            # Each worker flushes its cumulative tallies every 5 s; the sum is exact.
            wait_for(lambda: total_requests(sdk, exp_id) == traffic.routed, timeout_s=20)
        registry = Registry(Settings(home=tmp_path).resolved_registry_url)
        try:
            rows = ExperimentStore(registry).aggregates(exp_id)
        finally:
            registry.close()
        assert max(len(parts) for parts in rows.values()) == 2  # both workers served
        results = cli(capsys, "results", exp_id, "--url", server.url)
        assert results["srm"]["warning"] is False
        done = cli(capsys, "conclude", exp_id, "--winner", "treatment", "--url", server.url)
        assert done["state"] == "concluded"
        with Client(server.url) as sdk:
            assert sdk.get_model("linear")["production_version"] == 2


@pytest.fixture
def replicas(postgres: PostgresCluster, repo: Path, tmp_path: Path) -> Iterator[list[Server]]:
    url = postgres.create_database(f"exp_{tmp_path.name[-20:]}".replace("-", "_"))
    servers = []
    try:
        for i in range(2):
            home = tmp_path / f"replica{i}"
            home.mkdir()
            servers.append(Server(repo, home, extra=["--registry-url", url]))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_two_replicas_on_postgresql_agree_on_every_unit(replicas: list[Server]) -> None:
    a, b = replicas
    spec = {
        "name": "replicas", "model": "linear",
        "variants": [{"name": "control", "version": 1, "weight": 0.5},
                     {"name": "treatment", "version": 2, "weight": 0.5}],
    }  # fmt: skip
    with Client(a.url) as sdk:
        exp_id = sdk.create_experiment(spec)["id"]
        sdk.experiment_action(exp_id, "start")
    traffic = Traffic([a.url, b.url])
    try:
        wait_for(traffic.routed_everywhere, timeout_s=10)
        traffic.check_sticky(units=200, repeats=4)
    finally:
        traffic.close()
    with Client(b.url) as sdk:  # replica a's tallies arrive with its next flush
        wait_for(lambda: total_requests(sdk, exp_id) == traffic.routed, timeout_s=20)
