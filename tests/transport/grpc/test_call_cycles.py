"""Calls on the native gRPC core are freed by reference counting: they leave no cycles.

A serving process runs young collections rarely (serving/collector.py), so an object in a
reference cycle lives, with all it holds, until one runs. One cycle per call that held the
call's request let a client pile up requests: compression bombs held 600 MiB of a server
within 1.5 s (tests/security/test_grpc_attacks.py). Each kind of call here, answered or
refused, must leave nothing of the transport for the collector.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from fixtures.cycles import cycles
from fixtures.h2 import SERVED_LIMIT, H2Client, Served, grpc_headers, infer_message
from fixtures.h2_attacks import bomb

TRANSPORT = "inferd.transport"


def compressed(body: bytes) -> bytes:
    """``body`` (a gRPC message's bytes) as one gzip-compressed gRPC message."""
    data = gzip.compress(body)
    return b"\x01" + len(data).to_bytes(4) + data


GZIP = [*grpc_headers(), ("grpc-encoding", "gzip")]
# 100,000 values: 400 KB inflated, past what is inflated on the event loop (the rest is
# inflated on the worker thread).
LARGE = np.arange(100_000, dtype=np.float32)


async def answered(client: H2Client) -> None:
    answer = await client.call(infer_message([1, 2]))
    assert answer.trailers[b"grpc-status"] == b"0", answer.trailers


async def refused(client: H2Client) -> None:
    answer = await client.call(infer_message([1, 2]), grpc_headers("/inference.X/Nope"))
    assert answer.headers[b"grpc-status"] == b"12", answer.headers  # UNIMPLEMENTED


async def model_error(client: H2Client) -> None:
    body = infer_message([1, 2]).replace(b"linear", b"absent")
    answer = await client.call(body)
    assert (answer.trailers or answer.headers)[b"grpc-status"] == b"5"  # NOT_FOUND


async def gzip_small(client: H2Client) -> None:
    answer = await client.call(compressed(infer_message([1, 2])[5:]), GZIP)
    assert answer.trailers[b"grpc-status"] == b"0", answer.trailers


async def gzip_large(client: H2Client) -> None:
    answer = await client.call(compressed(infer_message(LARGE)[5:]), GZIP)
    assert answer.trailers[b"grpc-status"] == b"0", answer.trailers


async def gzip_bomb(client: H2Client) -> None:
    answer = await client.call(bomb(31, 4 * SERVED_LIMIT), GZIP)
    status = answer.trailers or answer.headers
    assert status[b"grpc-status"] == b"8", status  # RESOURCE_EXHAUSTED


async def gzip_corrupt(client: H2Client) -> None:
    whole = compressed(infer_message(LARGE)[5:])
    cut = whole[5:-64]  # the stream ends early, after the inline part
    answer = await client.call(b"\x01" + len(cut).to_bytes(4) + cut, GZIP)
    status = answer.trailers or answer.headers
    assert status[b"grpc-status"] == b"13", status  # INTERNAL: cannot decompress


async def reset(client: H2Client) -> None:
    stream_id = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream_id, grpc_headers())
    client.conn.send_data(stream_id, infer_message([1, 2])[:7])  # the message half sent
    await client.flush()
    client.conn.reset_stream(stream_id)
    await client.flush()
    await answered(client)  # the reset is handled before the next call is


CALLS: dict[str, Callable[[H2Client], Awaitable[None]]] = {
    "answered": answered, "unknown method": refused, "model error": model_error,
    "gzip inline": gzip_small, "gzip on the thread": gzip_large, "gzip bomb": gzip_bomb,
    "gzip truncated": gzip_corrupt, "reset by the client": reset,
}  # fmt: skip


@pytest.mark.parametrize("kind", list(CALLS))
async def test_calls_leave_no_cycles(served: Served, kind: str) -> None:
    client = await H2Client.connect(served.port)
    await CALLS[kind](client)  # warmed up: first-call caches are not cycles per call
    with cycles(TRANSPORT) as found:
        for _ in range(5):
            await CALLS[kind](client)
        await asyncio.sleep(0.05)  # callbacks of the last call run
    await client.close()
    assert found == [], found


async def test_connections_closed_by_the_client_leave_no_cycles(served: Served) -> None:
    with cycles(TRANSPORT) as found:
        for _ in range(5):
            client = await H2Client.connect(served.port)
            await answered(client)
            await client.close()
        await asyncio.sleep(0.2)  # the server sees each connection end
    assert found == [], found


def test_the_check_sees_a_cycle() -> None:
    class Node:
        pass

    Node.__module__ = f"{TRANSPORT}.grpc.test"
    with cycles(TRANSPORT) as found:
        node: Any = Node()
        node.itself = node
        del node
    assert len(found) == 1
