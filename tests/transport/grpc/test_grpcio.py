"""The grpcio (C-core) gRPC core: selection, limits, the call context, reuse of the port, stop.

The gRPC API tests (tests/api/test_grpc.py, tests/security/test_auth_grpc.py) run on both
cores; these check what is particular to choosing and configuring the grpcio one, and that
a handler sees the same context on both.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from inferd.cli.main import _parser
from inferd.errors import ConfigError
from inferd.settings import Settings, load_settings
from inferd.transport.grpc.context import ServicerContext
from inferd.transport.grpc.grpcio import channel_options
from inferd.transport.grpc.server import GrpcServer, Transport

CORES: list[Transport] = ["grpcio", "native"]


class Slow:
    """A test service: ``Wait`` answers once ``release`` is set; ``Echo`` describes its call."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    def handlers(self) -> dict[str, Any]:
        return {
            "Wait": grpc.unary_unary_rpc_method_handler(self.wait),
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
        }

    async def wait(self, request: bytes, context: ServicerContext) -> bytes:
        self.started.set()
        await self.release.wait()
        return b"done"

    async def echo(self, request: bytes, context: ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata() or ())
        remaining = context.time_remaining()
        if request == b"abort":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "busy", (("retry-after", "3"),))
        peer = urllib.parse.unquote(context.peer())
        return f"{peer}|{metadata.get('k')}|{remaining is not None and remaining < 60}".encode()


async def serve(
    service: Slow, transport: Transport, host: str = "127.0.0.1", **kw: Any
) -> GrpcServer:
    server = GrpcServer(
        {"t.Slow": service.handlers()}, lambda: True, host, 0, transport=transport, **kw
    )
    await server.start()
    return server


def call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/t.Slow/{method}")


def test_the_flag_and_the_environment_choose_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().grpc_transport == "native"
    args = _parser().parse_args(["serve", "--grpc-transport", "grpcio"])
    assert load_settings(grpc_transport=args.grpc_transport).grpc_transport == "grpcio"
    monkeypatch.setenv("INFERD_GRPC_TRANSPORT", "grpcio")
    assert load_settings().grpc_transport == "grpcio"
    monkeypatch.setenv("INFERD_GRPC_TRANSPORT", "h2o")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "grpc_transport"
    assert "INFERD_GRPC_TRANSPORT" in info.value.message
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--grpc-transport", "h2o"])
    with pytest.raises(ConfigError, match="'grpcio' or 'native'"):
        GrpcServer({}, lambda: True, "127.0.0.1", 0, transport="h2o")  # type: ignore[arg-type]


def test_limits_map_to_channel_arguments() -> None:
    options = dict(channel_options(
        max_message_bytes=1 << 20, request_read_timeout_s=2.5, idle_timeout_s=300.0,
        reuse_port=False,
    ))  # fmt: skip
    assert options["grpc.max_receive_message_length"] == 1 << 20
    assert options["grpc.max_send_message_length"] == 1 << 20
    assert options["grpc.server_handshake_timeout_ms"] == 2500
    assert options["grpc.max_connection_idle_ms"] == 300_000
    assert options["grpc.so_reuseport"] == 0  # C-core's default is on
    assert options["grpc.max_concurrent_streams"] == 1000
    assert options["grpc.http2.max_ping_strikes"] > 0
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert options["grpc.max_allowed_incoming_connections"] == soft // 2
    long_read = dict(channel_options(
        max_message_bytes=1024, request_read_timeout_s=30.0, idle_timeout_s=1.0, reuse_port=True,
    ))  # fmt: skip
    assert long_read["grpc.server_handshake_timeout_ms"] == 5000  # the handshake: 5 s at most
    assert long_read["grpc.so_reuseport"] == 1


@pytest.mark.parametrize("transport", CORES)
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_a_handler_sees_the_same_context_on_both_cores(
    transport: Transport, host: str
) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    server = await serve(Slow(), transport, host)
    target = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
    async with grpc.aio.insecure_channel(target) as channel:
        answer = await call(channel, "Echo")(b"", metadata=(("k", "v"),), timeout=10)
        no_deadline = await call(channel, "Echo")(b"")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(channel, "Echo")(b"abort")
    await server.stop(0)
    peer, metadata, deadline = answer.decode().split("|")
    prefix = "ipv6:[::1]:" if ":" in host else "ipv4:127.0.0.1:"
    assert peer.startswith(prefix)
    assert (metadata, deadline) == ("v", "True")
    assert no_deadline.decode().endswith("|None|False")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == "busy"
    assert ("retry-after", "3") in tuple(info.value.trailing_metadata() or ())


async def test_a_connection_that_never_sends_its_preface_is_closed() -> None:
    server = await serve(Slow(), "grpcio", request_read_timeout_s=0.2)
    silent_reader, silent = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.wait_for(silent_reader.read(), 3)  # the server's SETTINGS, then its close
    assert silent_reader.at_eof()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert (await call(channel, "Echo")(b"", timeout=5)).endswith(b"|None|True")
    silent.close()
    await server.stop(0)


async def test_two_servers_share_a_port_only_with_reuse_port() -> None:
    one = await serve(Slow(), "grpcio", reuse_port=True)
    two = GrpcServer({}, lambda: True, "127.0.0.1", one.port, reuse_port=True)
    assert await two.start() == one.port
    alone = GrpcServer({}, lambda: True, "127.0.0.1", one.port)
    with pytest.raises(ConfigError) as info:
        await alone.start()
    assert info.value.field == "grpc_port"
    for server in (one, two, alone):
        await server.stop(0)


async def refusal(channel: grpc.aio.Channel) -> grpc.StatusCode | None:
    """The status a new call gets; None when it is answered."""
    try:
        await call(channel, "Echo")(b"", timeout=5)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return None


@pytest.fixture
async def running() -> AsyncIterator[tuple[Slow, GrpcServer, grpc.aio.Channel]]:
    service = Slow()
    server = await serve(service, "grpcio")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield service, server, channel


async def test_stop_lets_a_running_call_finish(
    running: tuple[Slow, GrpcServer, grpc.aio.Channel],
) -> None:
    service, server, channel = running
    waiting = asyncio.ensure_future(call(channel, "Wait")(b"", timeout=10))
    await asyncio.wait_for(service.started.wait(), 5)
    stopping = asyncio.create_task(server.stop(10.0))
    deadline = asyncio.get_running_loop().time() + 5
    while (code := await refusal(channel)) is None:  # until the stop has begun
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    # Refused: UNAVAILABLE, or CANCELLED for a call that crossed the stop on the wire.
    assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert not waiting.done()
    service.release.set()  # the running call, in its grace period, still answers
    assert await waiting == b"done"
    await asyncio.wait_for(stopping, 10)
