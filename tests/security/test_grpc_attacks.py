"""Attacks on the gRPC port (issue 11) against a real `inferd serve --workers 1`, per gRPC
transport: each abusive connection is ended (GOAWAY ENHANCE_YOUR_CALM or PROTOCOL_ERROR), a
legitimate grpcio client beside it keeps getting answers, and the server's memory stays
bounded. Loopback only, each attack 1.5 s; the measured run is bench/grpc_attacks.py.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
from collections.abc import Awaitable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fixtures.h2 import INFER, H2Client, grpc_headers
from fixtures.h2_attacks import ATTACKS, Outcome, bomb, idle_connections, many_connections
from fixtures.h2_attacks import ping_flood as ping_flood_attack
from fixtures.servers import Server

from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.transport.grpc._h2_wire import ENHANCE_YOUR_CALM, PROTOCOL_ERROR

pytestmark = pytest.mark.slow

# The gRPC transports as `inferd serve --grpc-transport` selects them.
TRANSPORTS: dict[str, list[str]] = {
    "grpcio": ["--grpc-transport", "grpcio"], "native": ["--grpc-transport", "native"],
}  # fmt: skip
# What a transport is known not to hold yet (measured: docs/security.md), as strict xfails:
# fixing one turns its case into an XPASS that fails the run until it is taken off the list.
_NO_GOAWAY = "C-core does not end the connection (no GOAWAY) within the attack"
GAPS: dict[str, dict[str, str]] = {
    "grpcio": {
        "rapid_reset": _NO_GOAWAY, "empty_continuation": _NO_GOAWAY,
        "settings_large": _NO_GOAWAY, "settings_flood": _NO_GOAWAY, "empty_data": _NO_GOAWAY,
        "window_update": _NO_GOAWAY, "priority": _NO_GOAWAY,
    },
}  # fmt: skip
DURATION_S = 1.0
MAX_CONNECTIONS = 128
# Growth of the server's RSS an attack may cause (docs/security.md has the measured figures).
RSS_BOUND_MB = 400
CALM = {ENHANCE_YOUR_CALM, PROTOCOL_ERROR}


@pytest.fixture(scope="module", params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    """The gRPC transport under attack."""
    return str(request.param)


@pytest.fixture(scope="module")
def server(
    transport: str, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per transport for the module; its log must hold no traceback at the end."""
    home = tmp_path_factory.mktemp(f"attacks-{transport}")
    shutil.copytree(examples_dir, home / "repo")
    extra = [*TRANSPORTS[transport], "--max-connections", str(MAX_CONNECTIONS)]
    server = Server(home / "repo", home, extra=extra)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    log = (home / "server.log").read_bytes()  # bytes: C-core may log what attackers sent
    assert b"Traceback" not in log, log[-3000:]


def known_gap(request: pytest.FixtureRequest, transport: str, attack: str) -> None:
    """Mark the case a strict xfail where the transport is known not to hold (GAPS)."""
    reason = GAPS.get(transport, {}).get(attack)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{transport}: {reason}"))


def rss_mb(server: Server) -> float:
    """The server process's resident memory in MiB (/proc/<pid>/status)."""
    with open(f"/proc/{server.proc.pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/<pid>/status")


def linear_request() -> pb.ModelInferRequest:
    """The legitimate client's call: ``linear`` of [1, 2], answered [3, 5]."""
    request = pb.ModelInferRequest(model_name="linear")
    request.inputs.add(name="x", datatype="FP32", shape=[2])
    request.raw_input_contents.append(np.array([1, 2], dtype="<f4").tobytes())
    return request


def infer(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryUnaryMultiCallable[pb.ModelInferRequest, pb.ModelInferResponse]:
    """ModelInfer on ``channel``."""
    return channel.unary_unary(
        INFER,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


async def beside(server: Server, attack: Awaitable[Outcome]) -> tuple[Outcome, int]:
    """Run ``attack`` with a grpcio client calling ``linear`` back to back beside it; the
    attack's outcome and the calls answered meanwhile. Any failed call fails the test, and
    the server must still answer once the attack is over."""
    done = asyncio.Event()
    request = linear_request()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = infer(channel)
        try:
            await call(request, timeout=10)  # connected before the attack starts
        except BaseException:
            if inspect.iscoroutine(attack):
                attack.close()  # never started: no "never awaited" warning in a later test
            raise

        async def legit() -> int:
            answered = 0
            while not done.is_set():
                response = await call(request, timeout=10)
                assert np.frombuffer(response.raw_output_contents[0], "<f4").tolist() == [3, 5]
                answered += 1
            return answered

        calls = asyncio.ensure_future(legit())
        try:
            outcome = await attack
        finally:
            done.set()
        answered = await calls
        await call(request, timeout=10)
    return outcome, answered


FLOODS = [
    "rapid_reset", "empty_continuation", "settings_large", "settings_flood", "empty_data",
    "window_update", "priority",
]  # fmt: skip


@pytest.mark.parametrize("name", FLOODS)
async def test_a_flood_gets_goaway_and_the_others_are_served(
    request: pytest.FixtureRequest, transport: str, server: Server, name: str
) -> None:
    known_gap(request, transport, name)
    before = rss_mb(server)
    outcome, answered = await beside(server, ATTACKS[name](server.grpc_port, DURATION_S))
    assert outcome.goaways, outcome  # the server ended the attacker's connection ...
    assert set(outcome.goaways) <= CALM, outcome  # ... as abuse
    assert answered > 0
    assert rss_mb(server) - before < RSS_BOUND_MB


async def test_ping_floods_from_connections_that_never_read(
    request: pytest.FixtureRequest, transport: str, server: Server
) -> None:
    known_gap(request, transport, "ping_flood")
    before = rss_mb(server)
    outcome, answered = await beside(server, ping_flood_attack(server.grpc_port, DURATION_S, 10))
    assert outcome.goaways or outcome.closed, outcome  # ended, though they never read
    assert set(outcome.goaways) <= CALM, outcome
    assert answered > 0
    assert rss_mb(server) - before < RSS_BOUND_MB


async def pause(seconds: float) -> Outcome:
    """No attack: ``seconds`` of calls from the legitimate client alone."""
    await asyncio.sleep(seconds)
    return Outcome()


async def served_again(server: Server, within_s: float) -> None:
    """Wait until a fresh grpcio client's call is answered, ``within_s`` at most: C-core may
    CANCEL calls for a moment after a zero-window attacker's connections close, while it
    releases what they held (docs/security.md)."""
    request = linear_request()
    deadline = asyncio.get_running_loop().time() + within_s
    failures: list[grpc.StatusCode] = []
    while asyncio.get_running_loop().time() < deadline:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            call = infer(channel)
            try:
                await call(request, timeout=5)
                return
            except grpc.aio.AioRpcError as error:
                failures.append(error.code())
        await asyncio.sleep(0.2)
    raise AssertionError(f"not served again within {within_s} s after the attack: {failures}")


async def test_a_zero_window_with_answers_never_read(transport: str, server: Server) -> None:
    before = rss_mb(server)
    attack = ATTACKS["zero_window"](server.grpc_port, 2.0)
    if transport == "grpcio":
        # C-core CANCELs legitimate calls beside a zero-window peer in some runs, not in all
        # (docs/security.md): what always holds is checked, with the attack run alone and
        # the legitimate client served after it.
        outcome = await attack
        await served_again(server, within_s=15.0)
        _, answered = await beside(server, pause(0.2))
    else:
        outcome, answered = await beside(server, attack)
    assert outcome.goaways or outcome.closed, outcome  # ended, though it never read
    assert set(outcome.goaways) <= CALM, outcome
    assert answered > 0
    assert rss_mb(server) - before < RSS_BOUND_MB


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compression_bombs_are_refused_without_inflating_them(
    server: Server, encoding: str
) -> None:
    before = rss_mb(server)
    outcome, answered = await beside(server, ATTACKS[f"{encoding}_bomb"](server.grpc_port, 1.5))
    assert outcome.units > 1, outcome
    assert answered > 0
    assert rss_mb(server) - before < RSS_BOUND_MB
    # One bomb on its own: 1 MB that inflates to 1 GiB is refused as too large.
    client = await H2Client.connect(server.grpc_port)
    wbits = 31 if encoding == "gzip" else 15
    answer = await client.call(bomb(wbits, 1 << 30), [*grpc_headers(), ("grpc-encoding", encoding)])
    status = answer.trailers or answer.headers
    assert status[b"grpc-status"] == b"8", status  # RESOURCE_EXHAUSTED
    await client.close()


async def test_idle_connections_do_not_keep_new_clients_out(
    request: pytest.FixtureRequest, transport: str, server: Server
) -> None:
    known_gap(request, transport, "idle_connections")
    outcome, answered = await beside(
        server, idle_connections(server.grpc_port, DURATION_S, MAX_CONNECTIONS)
    )
    assert outcome.connections >= MAX_CONNECTIONS
    assert outcome.probes > 0
    assert outcome.probes_ok == outcome.probes, outcome  # every fresh connection was served
    assert answered > 0


async def test_many_connections_and_random_frames(server: Server) -> None:
    outcome, answered = await beside(server, many_connections(server.grpc_port, DURATION_S, 20))
    assert outcome.units > 0, outcome
    assert answered > 0
    outcome, answered = await beside(server, ATTACKS["random_frames"](server.grpc_port, 1.0))
    assert outcome.connections > 1
    assert answered > 0
