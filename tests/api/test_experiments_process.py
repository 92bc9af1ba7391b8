"""Experiments across processes: `inferd serve --workers 2` and two replicas on one
PostgreSQL route every unit alike, and their tallies merge exactly; CLI and SDK end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
import httpx
import pytest
from fixtures.postgres import PostgresCluster
from fixtures.servers import Server, replica_servers

from inferd.cli.main import main
from inferd.client import Client
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
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


Sender = Callable[[str], str]  # unit id -> the variant that served it ("" when none)


def http_sender(client: httpx.Client) -> Sender:
    def send(unit: str) -> str:
        for _ in range(100):  # a worker still starting answers 503: retry
            r = client.post("/predict", json={**BODY, "user_id": unit})
            if r.status_code != 503:
                break
            time.sleep(0.1)
        assert r.status_code == 200, r.text
        return r.headers.get("inferd-experiment-variant", "")

    return send


def grpc_sender(target: str) -> Sender:
    """A fresh connection per call: with SO_REUSEPORT the kernel spreads them over the
    workers (a long-lived one stays with whichever worker was listening when it opened)."""

    def send(unit: str) -> str:
        msg = pb.ModelInferRequest(model_name="linear")
        msg.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
        msg.parameters["user_id"].string_param = unit
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            call = channel.unary_unary(
                f"/{SERVICE}/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            for _ in range(100):  # a worker still starting answers UNAVAILABLE: retry
                try:
                    answer = call(msg, timeout=30)
                    break
                except grpc.RpcError as err:
                    if err.code() is not grpc.StatusCode.UNAVAILABLE:
                        raise
                    time.sleep(0.1)
        return str(answer.parameters["experiment_variant"].string_param)

    return send


class Traffic:
    """Connections to the servers, counting the requests an experiment routed.

    With ``--workers N`` the HTTP port is one socket whose connections any worker may accept
    (under load often the same one), while each worker listens on the gRPC port with
    SO_REUSEPORT, where the kernel spreads new connections by their address.
    """

    def __init__(self, urls: Sequence[str], grpc_targets: Sequence[str] = ()) -> None:
        self.clients = [httpx.Client(base_url=url, timeout=30) for url in urls]
        self.senders = [http_sender(c) for c in self.clients]
        self.senders += [grpc_sender(t) for t in grpc_targets]
        self.routed = 0
        self.unrouted: list[tuple[int, str, float]] = []

    def variant(self, send: Sender, unit: str) -> str:
        found = send(unit)
        self.routed += bool(found)
        if not found:
            self.unrouted.append((self.senders.index(send), unit, time.monotonic()))
        return found

    def routed_everywhere(self) -> bool:
        """True once every sender routes, five times over (gRPC senders open a connection
        per call, so this reaches each worker with near certainty)."""
        return all(self.variant(s, f"probe-{i}") for i, s in enumerate(self.senders * 5))

    def check_sticky(self, units: int, repeats: int) -> None:
        seen: dict[str, set[str]] = {}
        for j in range(repeats):
            for i in range(units):  # a unit's requests go over different connections
                send = self.senders[(i + j) % len(self.senders)]
                seen.setdefault(f"user-{i}", set()).add(self.variant(send, f"user-{i}"))
        split = {u: sorted(v) for u, v in seen.items() if len(v) > 1}
        assert split == {}, (self.unrouted, time.monotonic())
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
                      "--variant", "control=1:0.7", "--variant", "treatment=2:0.3",
                      "--sample-rate", "1")  # fmt: skip
        exp_id = created["id"]
        with Client(server.url) as sdk:
            assert sdk.experiment_action(exp_id, "start")["state"] == "running"
        traffic = Traffic([server.url] * 2, [f"127.0.0.1:{server.grpc_port}"] * 2)
        registry = Registry(Settings(home=tmp_path).resolved_registry_url)
        store = ExperimentStore(registry)

        def both_workers_counted() -> bool:
            # The second worker may still be starting when the first answers ready: keep
            # sending on new connections until both have flushed tallies (every 5 s).
            traffic.check_sticky(units=50, repeats=2)
            rows = store.aggregates(exp_id).values()
            return min((len(parts) for parts in rows), default=0) == 2

        try:
            wait_for(traffic.routed_everywhere, timeout_s=15)
            traffic.check_sticky(units=150, repeats=4)
            wait_for(both_workers_counted, timeout_s=60)
        finally:
            traffic.close()
            registry.close()
        with Client(server.url) as sdk:
            # Each worker flushes its cumulative tallies every 5 s; the sum is exact.
            wait_for(lambda: total_requests(sdk, exp_id) == traffic.routed, timeout_s=20)
        results = cli(capsys, "results", exp_id, "--url", server.url)
        assert results["srm"]["basis"] == "units"  # every request logged: 150+ units
        assert results["srm"]["warning"] is False
        done = cli(capsys, "conclude", exp_id, "--winner", "treatment", "--url", server.url)
        assert done["state"] == "concluded"
        with Client(server.url) as sdk:
            assert sdk.get_model("linear")["production_version"] == 2


@pytest.fixture
def replicas(postgres: PostgresCluster, repo: Path, tmp_path: Path) -> Iterator[list[Server]]:
    url = postgres.create_database(f"exp_{tmp_path.name[-20:]}".replace("-", "_"))
    with replica_servers(repo, tmp_path, url) as servers:
        yield servers


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
