"""The gRPC transport alone: CPU per unary call through inferd's HTTP/2 + gRPC layers.

Run ``.venv/bin/python bench/http2_transport.py`` (a few seconds). In one process, with no
socket and no data plane: a :class:`~inferd.transport.grpc.native.GrpcConnection` on a
transport that only counts bytes, fed pre-encoded HEADERS + DATA frames for an echo method
(1 KiB messages) the way a client's reads arrive, with 1 call per read (a client waiting for
each answer) and 64 calls per read (a gRPC channel with 64 calls in flight). It prints µs per
call (best of 5 rounds) and the ratio between the two: what multiplexing saves. The serving
benchmarks (bench/grpc_vs_http.py) measure the whole server; this isolates the transport.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import grpc
from hpack import Encoder

from inferd.transport.grpc._h2_wire import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PREFACE,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
)
from inferd.transport.grpc.native import GrpcConnection, GrpcTransportServer

CALLS = 20_000
MESSAGE = b"\x00" + (1024).to_bytes(4) + b"x" * 1024
HEADERS_LIST = [
    (":method", "POST"), (":scheme", "http"), (":path", "/bench.Echo/Same"),
    (":authority", "127.0.0.1:8001"), ("content-type", "application/grpc"), ("te", "trailers"),
    ("user-agent", "grpc-c++/1.60"), ("grpc-accept-encoding", "identity,deflate,gzip"),
]  # fmt: skip


class CountingTransport:
    """Stands in for the socket: counts what the connection writes."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0  # everything "written" at once

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else None

    def close(self) -> None:
        pass


async def per_call_us(calls_per_read: int) -> float:
    async def same(request: bytes, context: Any) -> bytes:
        return request

    server = GrpcTransportServer()
    handler = grpc.unary_unary_rpc_method_handler(same)
    server.add_registered_method_handlers("bench.Echo", {"Same": handler})
    conn = GrpcConnection(server)
    transport = CountingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    # The client grants the largest windows, as grpc clients do after a few round trips.
    window = struct.pack(">HI", 4, 2**31 - 1)
    grant = (2**31 - 1 - 65_535).to_bytes(4)
    conn.data_received(PREFACE + frame(SETTINGS, 0, 0, window) + frame(WINDOW_UPDATE, 0, 0, grant))
    encoder, stream_id = Encoder(), 1
    reads = []
    for _ in range(CALLS // calls_per_read):
        chunk = []
        for _ in range(calls_per_read):
            block = encoder.encode(HEADERS_LIST)
            chunk.append(frame(HEADERS, END_HEADERS, stream_id, block))
            chunk.append(frame(DATA, END_STREAM, stream_id, MESSAGE))
            stream_id += 2
        reads.append(b"".join(chunk))
    start = time.perf_counter()
    for data in reads:
        conn.data_received(data)
        while conn.streams:  # noqa: ASYNC110 (yield until the calls and the flush have run)
            await asyncio.sleep(0)
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    expected = len(reads) * calls_per_read * len(MESSAGE)
    if transport.written < expected:
        raise RuntimeError(f"only {transport.written} bytes written, expected > {expected}")
    conn.connection_lost(None)
    return elapsed / (len(reads) * calls_per_read) * 1e6


async def main() -> None:
    results: dict[int, float] = {}
    for _ in range(5):  # interleaved rounds, best of each
        for n in (1, 64):
            us = await per_call_us(n)
            results[n] = min(results.get(n, us), us)
    for n, us in results.items():
        print(f"{n:>3} calls per read: {us:6.1f} µs per unary call (transport only)")
    print(f"ratio 1 per read / 64 per read: {results[1] / results[64]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
