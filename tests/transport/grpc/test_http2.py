"""inferd's HTTP/2 + gRPC transport at the protocol level.

Clients: the ``h2`` library (an independent HTTP/2 implementation), raw frames on a socket
for what a well-behaved client library never sends, and grpcio for compression, large
messages and shutdown. The service-level behaviour is in test_grpc.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import numpy as np
import pytest
from fixtures.h2 import (
    INFER,
    Answer,
    H2Client,
    Served,
    eventually,
    goaway_code,
    grpc_headers,
    infer_message,
    outputs,
    read_frames,
)
from hpack import Decoder, Encoder

from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.transport.grpc._compression import Inflation, MessageTooLarge
from inferd.transport.grpc._h2_limits import Budget, Http2Limits
from inferd.transport.grpc._h2_wire import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FRAME_HEAD,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    SETTINGS,
    WINDOW_UPDATE,
    HeaderDecoder,
    frame,
)
from inferd.transport.grpc.native import GrpcTransportServer


async def test_a_plain_http2_client_can_call(served: Served) -> None:
    client = await H2Client.connect(served.port)
    for _ in range(3):  # the HPACK tables carry over between calls
        answer = await client.call(infer_message([1, 2, 3]))
        assert answer.headers[b":status"] == b"200"
        assert answer.headers[b"content-type"] == b"application/grpc"
        assert answer.trailers[b"grpc-status"] == b"0"
        assert outputs(answer) == [4, 7, 10]
    await client.close()


async def test_the_client_windows_are_honoured(served: Served) -> None:
    # A 16-byte stream window: the answer must come in 16-byte DATA frames, each sent only
    # after the client's WINDOW_UPDATE (h2 raises FlowControlError on any overrun).
    window = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16}
    client = await H2Client.connect(served.port, window)
    answer = await client.call(infer_message([1, 2, 3]))
    assert outputs(answer) == [4, 7, 10]
    assert max(answer.frames) == 16
    assert len(answer.frames) == -(-len(answer.data) // 16)
    # 200,000 values each way: 800 KB, past the default 65,535-byte connection window.
    big = np.arange(200_000, dtype=np.float32)
    answer = await client.call(infer_message(big))
    assert answer.trailers[b"grpc-status"] == b"0", answer.trailers
    np.testing.assert_array_equal(outputs(answer), 3 * big + 1)
    await client.close()


async def test_ping_is_answered(served: Served) -> None:
    client = await H2Client.connect(served.port)
    client.conn.ping(b"inferd!!")
    await client.flush()
    while not client.pings:
        await client.read_once()
    assert client.pings == [b"inferd!!"]
    await client.close()


async def test_unknown_method_wrong_content_type_and_verb(served: Served) -> None:
    client = await H2Client.connect(served.port)
    answer = await client.call(b"", grpc_headers(f"/{SERVICE}/NoSuchMethod"))
    assert answer.trailers == {}
    assert answer.headers[b"grpc-status"] == b"12"
    assert b"NoSuchMethod" in answer.headers[b"grpc-message"]
    stream_id = client.conn.get_next_available_stream_id()
    client.answers[stream_id] = answer = Answer()
    client.conn.send_headers(stream_id, grpc_headers(content_type="text/plain"), end_stream=True)
    await client.flush()
    while not answer.headers:
        await client.read_once()
    assert answer.headers[b":status"] == b"415"
    answer = await client.call(infer_message([1]), [*grpc_headers(), ("trace-bin", "no base64!")])
    assert answer.headers[b"grpc-status"] == b"3"
    assert b"trace-bin" in answer.headers[b"grpc-message"]
    answer = await client.call(infer_message([]) + infer_message([1]))  # two messages, unary
    assert answer.headers[b"grpc-status"] == b"13"
    assert b"expected one request message, got 2" in answer.headers[b"grpc-message"]
    await client.close()


async def test_continuation_padding_and_split_messages(served: Served) -> None:
    """Frames h2 would not send this way: a header block over HEADERS + CONTINUATION, a
    padded DATA frame, and a message split across two DATA frames."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    block = Encoder().encode([*grpc_headers(), ("x-filler", "f" * 300)])
    body = infer_message([4, 5])
    padding = 7
    padded = bytes((padding,)) + body[:10] + b"\x00" * padding
    writer.write(
        PREFACE + frame(SETTINGS, 0, 0)
        + frame(HEADERS, 0, 1, block[:100]) + frame(CONTINUATION, END_HEADERS, 1, block[100:])
        + frame(DATA, PADDED, 1, padded) + frame(DATA, END_STREAM, 1, body[10:])
    )  # fmt: skip
    decoder, data, trailers = Decoder(), b"", None
    async for kind, flags, stream_id, payload in read_frames(reader):
        if stream_id != 1:
            continue
        if kind == DATA:
            data += payload
        elif kind == HEADERS:
            headers = dict(decoder.decode(payload, raw=True))  # type: ignore[arg-type]
            if flags & END_STREAM:
                trailers = headers
                break
    assert trailers is not None
    assert trailers[b"grpc-status"] == b"0", trailers
    response = pb.ModelInferResponse.FromString(data[5:])
    assert np.frombuffer(response.raw_output_contents[0], dtype="<f4").tolist() == [13, 16]
    writer.close()
    await writer.wait_closed()


async def test_a_broken_connection_ends_alone(served: Served) -> None:
    # Not HTTP/2 at all: the connection is dropped.
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    sent = await asyncio.wait_for(reader.read(), 10)  # returns at the server's close
    assert sent[3] == SETTINGS  # all it got is the server preface sent on connect
    writer.close()
    await writer.wait_closed()
    # HTTP/2, but DATA on stream 0: GOAWAY with PROTOCOL_ERROR, then the close.
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(PREFACE + frame(SETTINGS, 0, 0) + frame(DATA, 0, 0, b"x"))
    kinds = [(kind, payload) async for kind, _, _, payload in read_frames(reader)]
    goaway = [payload for kind, payload in kinds if kind == GOAWAY]
    assert goaway
    assert int.from_bytes(goaway[0][4:8]) == PROTOCOL_ERROR
    writer.close()
    await writer.wait_closed()
    # Everyone else is still served.
    client = await H2Client.connect(served.port)
    assert outputs(await client.call(infer_message([0]))) == [1]
    await client.close()


async def test_random_frames_end_only_their_connection(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        garbage = bytearray()
        for _ in range(int(rng.integers(1, 6))):  # frames of random type, flags and stream
            payload = rng.bytes(int(rng.integers(0, 40)))
            kind, flags = int(rng.integers(0, 12)), int(rng.integers(0, 256))
            head = FRAME_HEAD.pack(0, len(payload), kind, flags, int(rng.integers(0, 4)))
            garbage += head + payload
        writer.write(PREFACE + frame(SETTINGS, 0, 0) + bytes(garbage))
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(65_536), 0.2)
        writer.close()
        await writer.wait_closed()
    client = await H2Client.connect(served.port)
    assert outputs(await client.call(infer_message([0]))) == [1]
    await client.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no bug of ours hit


async def test_gzip_messages_and_binary_metadata(served: Served) -> None:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{served.port}", compression=grpc.Compression.Gzip
    ) as channel:
        call = channel.unary_unary(
            INFER,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        request = pb.ModelInferRequest.FromString(infer_message([1.0] * 1000)[5:])
        response = await call(request, timeout=10, metadata=(("trace-bin", b"\x00\xff"),))
        assert np.frombuffer(response.raw_output_contents[0], dtype="<f4").tolist() == [4.0] * 1000
    # A compressed flag with an encoding the server does not speak.
    client = await H2Client.connect(served.port)
    headers = [*grpc_headers(), ("grpc-encoding", "snappy")]
    answer = await client.call(b"\x01" + (3).to_bytes(4) + b"abc", headers)
    assert answer.headers[b"grpc-status"] == b"12"
    assert b"gzip" in answer.headers[b"grpc-accept-encoding"]
    body = gzip.compress(infer_message([2])[5:])
    headers = [*grpc_headers(), ("grpc-encoding", "gzip")]
    answer = await client.call(b"\x01" + len(body).to_bytes(4) + body, headers)
    assert outputs(answer) == [7]
    await client.close()


async def test_stop_lets_running_calls_finish(served: Served) -> None:
    # GOAWAY, then the running call completes: grpcio here (h2 ends its side at GOAWAY).
    config = served.repo / "linear" / "model.yaml"
    text = config.read_text()
    config.write_text(text.replace("max_queue_delay_ms: 0", "max_queue_delay_ms: 400"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        load = channel.unary_unary(
            f"/{SERVICE}/RepositoryModelLoad",
            request_serializer=pb.RepositoryModelLoadRequest.SerializeToString,
            response_deserializer=pb.RepositoryModelLoadResponse.FromString,
        )
        await load(pb.RepositoryModelLoadRequest(model_name="linear"), timeout=30)
        call = channel.unary_unary(
            INFER,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        request = pb.ModelInferRequest.FromString(infer_message([1])[5:])
        running = asyncio.ensure_future(call(request, timeout=10))
        await asyncio.sleep(0.1)  # the call waits in the batcher for company
        await served.server.stop(5.0)
        response = await running
        assert np.frombuffer(response.raw_output_contents[0], dtype="<f4").tolist() == [4]
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", served.port)


def test_header_cache_follows_the_hpack_table() -> None:
    encoder, decoder = Encoder(), HeaderDecoder(1 << 16)
    assert decoder.decode(encoder.encode([("a", "1")])) == [(b"a", b"1")]  # enters the table
    indexed = encoder.encode([("a", "1")])
    assert indexed == b"\xbe"  # dynamic index 62, one byte: cacheable
    assert decoder.decode(indexed) == [(b"a", b"1")]
    assert decoder.decode(indexed) == [(b"a", b"1")]  # from the cache
    assert decoder.decode(encoder.encode([("b", "2")])) == [(b"b", b"2")]  # (b, 2) is now 62
    assert decoder.decode(b"\xbe") == [(b"b", b"2")]  # not the stale (a, 1)
    assert decoder.decode(b"\xbf") == [(b"a", b"1")]


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    """A bare transport with one unary echo method, two connections at most, a 0.3 s
    request read timeout and a 0.6 s idle timeout."""

    async def same(request: bytes, context: Any) -> bytes:
        return request

    server = GrpcTransportServer(max_connections=2, request_read_timeout_s=0.3, idle_timeout_s=0.6)
    server.add_registered_method_handlers(
        "t.Echo", {"Same": grpc.unary_unary_rpc_method_handler(same)}
    )
    yield await server.start("127.0.0.1", 0)
    await server.stop(0.5)


async def test_slow_requests_idle_and_extra_connections_are_ended(echo: int) -> None:
    client = await H2Client.connect(echo)
    answer = await client.call(b"\x00\x00\x00\x00\x02hi", grpc_headers("/t.Echo/Same"))
    assert bytes(answer.data) == b"\x00\x00\x00\x00\x02hi"
    # A request that never arrives whole: DEADLINE_EXCEEDED after the read timeout.
    stream_id = client.conn.get_next_available_stream_id()
    client.answers[stream_id] = answer = Answer()
    client.conn.send_headers(stream_id, grpc_headers("/t.Echo/Same"))
    client.conn.send_data(stream_id, b"\x00\x00\x00\x00\x09partial")
    await client.flush()
    while not answer.ended:
        await client.read_once()
    assert answer.headers[b"grpc-status"] == b"4"
    assert b"INFERD_REQUEST_READ_TIMEOUT_S" in answer.headers[b"grpc-message"]
    # Connections without calls are closed after the idle timeout.
    await asyncio.sleep(1.5)
    await asyncio.wait_for(client.reader.read(), 5)  # returns at the server's close
    assert client.reader.at_eof()
    await client.close()


async def start_call(client: H2Client, path: str, body: bytes) -> Answer:
    """Send a whole call's request; its answer fills in as the client reads."""
    stream_id = client.conn.get_next_available_stream_id()
    client.answers[stream_id] = answer = Answer()
    client.conn.send_headers(stream_id, grpc_headers(path))
    client.conn.send_data(stream_id, body, end_stream=True)
    await client.flush()
    return answer


async def test_at_the_connection_cap_the_oldest_idle_connection_makes_room() -> None:
    release = asyncio.Event()

    async def wait(request: bytes, context: Any) -> bytes:
        await release.wait()
        return request

    server = GrpcTransportServer(max_connections=2)
    server.add_registered_method_handlers(
        "t.Echo", {"Wait": grpc.unary_unary_rpc_method_handler(wait)}
    )
    port = await server.start("127.0.0.1", 0)
    body = b"\x00\x00\x00\x00\x02hi"
    oldest, busy = await H2Client.connect(port), await H2Client.connect(port)
    first = await start_call(busy, "/t.Echo/Wait", body)
    await eventually(lambda: any(conn.streams for conn in server.connections))
    # A third connection: the idle one is told GOAWAY (NO_ERROR) and closed, not the new one.
    newest = await H2Client.connect(port)
    assert await goaway_code(oldest.reader) == NO_ERROR
    second = await start_call(newest, "/t.Echo/Wait", body)
    await eventually(lambda: all(conn.streams for conn in server.connections))
    # Both connections have calls running: a fourth one is refused (ENHANCE_YOUR_CALM).
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(PREFACE + frame(SETTINGS, 0, 0))
    assert await goaway_code(reader) == ENHANCE_YOUR_CALM
    release.set()
    for client, answer in ((busy, first), (newest, second)):
        while not answer.ended:
            await client.read_once()
        assert bytes(answer.data) == body
    for closable in (oldest, busy, newest):
        await closable.close()
    writer.close()
    await writer.wait_closed()
    await server.stop(0.5)


async def test_a_connection_without_preface_and_settings_is_dropped_soon() -> None:
    server = GrpcTransportServer(limits=Http2Limits(handshake_timeout_s=0.2))
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(PREFACE)  # and never its SETTINGS
    settled = await H2Client.connect(port)  # preface and SETTINGS: kept
    assert await goaway_code(reader, timeout_s=5) is None  # closed, no GOAWAY: not HTTP/2 yet
    assert len(server.connections) == 1
    writer.close()
    await writer.wait_closed()
    await settled.close()
    await server.stop(0.5)


async def test_requests_still_arriving_have_a_memory_budget() -> None:
    async def same(request: bytes, context: Any) -> bytes:
        return request

    server = GrpcTransportServer(max_message_bytes=10_000, max_buffered_bytes=1)  # -> 10,000
    handlers = {"Same": grpc.unary_unary_rpc_method_handler(same)}
    server.add_registered_method_handlers("t.Echo", handlers)
    client = await H2Client.connect(await server.start("127.0.0.1", 0))
    big = b"\x00" + (8000).to_bytes(4) + b"a" * 8000

    def open_stream(first: bytes) -> int:
        stream_id = client.conn.get_next_available_stream_id()
        client.answers[stream_id] = Answer()
        client.conn.send_headers(stream_id, grpc_headers("/t.Echo/Same"))
        client.conn.send_data(stream_id, first)
        return stream_id

    first = open_stream(big[:6000])
    second = open_stream(big[:5000])  # 11,000 bytes held: over the budget
    await client.flush()
    while not client.answers[second].ended:
        await client.read_once()
    assert client.answers[second].headers[b"grpc-status"] == b"8"  # RESOURCE_EXHAUSTED
    assert b"INFERD_GRPC_MAX_BUFFERED_BYTES" in client.answers[second].headers[b"grpc-message"]
    assert server.buffered == 6000  # the refused call gave its bytes back
    client.conn.send_data(first, big[6000:], end_stream=True)
    await client.flush()
    while not client.answers[first].ended:
        await client.read_once()
    assert bytes(client.answers[first].data) == big
    assert server.buffered == 0
    third = open_stream(big[:3000])  # a reset gives its bytes back too
    await client.flush()
    await eventually(lambda: server.buffered == 3000)
    client.conn.reset_stream(third)
    await client.flush()
    await eventually(lambda: server.buffered == 0)
    await client.close()
    await server.stop(0.5)


async def test_a_client_that_does_not_read_is_not_read_either() -> None:
    async def same(request: bytes, context: Any) -> bytes:
        return request

    server = GrpcTransportServer()
    handlers = {"Same": grpc.unary_unary_rpc_method_handler(same)}
    server.add_registered_method_handlers("t.Echo", handlers)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Windows wide open, then 200 echo calls of 128 KiB, and never a read.
    settings = struct.pack(">HI", 4, 2**31 - 1)
    writer.write(PREFACE + frame(SETTINGS, 0, 0, settings)
                 + frame(WINDOW_UPDATE, 0, 0, (2**31 - 1 - 65_535).to_bytes(4)))  # fmt: skip
    encoder = Encoder()
    body = b"\x00" + (128 * 1024).to_bytes(4) + b"z" * 128 * 1024
    stream_id = 1
    for _ in range(200):
        block = encoder.encode(grpc_headers("/t.Echo/Same"))
        writer.write(frame(HEADERS, END_HEADERS, stream_id, block))
        for i in range(0, len(body), 16_384):
            last = END_STREAM if i + 16_384 >= len(body) else 0
            writer.write(frame(DATA, last, stream_id, body[i : i + 16_384]))
        stream_id += 2
    await asyncio.sleep(1.0)  # the first answers fill the socket buffers, then the server's
    (conn,) = server.connections
    assert conn.transport is not None
    assert not conn.transport.is_reading()  # paused: the rest of the requests wait
    assert conn.transport.get_write_buffer_size() < 16 * 1024 * 1024  # 25 MiB were asked for
    # Reading again lets everything through: all 200 answers arrive.
    received, answers = 0, 0
    async for kind, flags, _, payload in read_frames(reader):
        if kind == DATA:
            received += len(payload)
        elif kind == HEADERS and flags & END_STREAM:
            answers += 1
            if answers == 200:
                break
    assert received == 200 * len(body)
    assert conn.transport.is_reading()
    writer.close()
    await writer.wait_closed()
    await server.stop(0.5)


def test_a_budget_refills_with_time_and_with_work() -> None:
    now = [0.0]
    budget = Budget(burst=3, rate=2.0, per_work=1.0, clock=lambda: now[0])
    assert [budget.spend(0) for _ in range(4)] == [True, True, True, False]  # the burst
    now[0] = 1.0  # two tokens back
    assert [budget.spend(0) for _ in range(3)] == [True, True, False]
    assert [budget.spend(2) for _ in range(3)] == [True, True, False]  # two units of work
    now[0] = 100.0  # never more than the burst
    assert [budget.spend(2) for _ in range(4)] == [True, True, True, False]


def test_inflation_stops_past_the_limit() -> None:
    data = zlib.compress(bytes(10_000_000))  # 10 MB of zeros in ~10 KB
    inflation = Inflation(data, zlib.MAX_WBITS, limit=1_000_000)
    with pytest.raises(MessageTooLarge):
        inflation.run(2_000_000)
    small = Inflation(zlib.compress(b"abc" * 100), zlib.MAX_WBITS, limit=300)
    assert small.run(301)
    assert small.result() == b"abc" * 100
    truncated = Inflation(zlib.compress(b"abc" * 100)[:-4], zlib.MAX_WBITS, limit=300)
    with pytest.raises(zlib.error):
        truncated.run(301)


@pytest.fixture
async def stream_echo() -> AsyncIterator[int]:
    """A bare transport with one bidirectional echo method and a budget of 10 frames that
    do no work, refilled by work only (a frozen clock)."""

    async def echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    server = GrpcTransportServer(
        limits=Http2Limits(useless_burst=10, useless_rate=0.0, clock=lambda: 0.0)
    )
    handlers = {"Echo": grpc.stream_stream_rpc_method_handler(echo)}
    server.add_registered_method_handlers("t.Stream", handlers)
    yield await server.start("127.0.0.1", 0)
    await server.stop(0.5)


async def open_echo_stream(
    port: int, settings: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection with stream 1 open on ``/t.Stream/Echo``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    block = Encoder().encode(grpc_headers("/t.Stream/Echo"))
    writer.write(PREFACE + frame(SETTINGS, 0, 0, settings) + frame(HEADERS, END_HEADERS, 1, block))
    return reader, writer


async def next_data(reader: asyncio.StreamReader) -> bytes:
    """The payload of the next DATA frame on stream 1 (no GOAWAY before it)."""
    async for kind, _, stream_id, payload in read_frames(reader):
        assert kind != GOAWAY, payload[8:]
        if kind == DATA and stream_id == 1:
            return payload
    raise AssertionError("the server closed the connection")


async def test_a_long_bidirectional_stream_may_acknowledge_every_answer(stream_echo: int) -> None:
    # grpc C-core clients (perf_analyzer --streaming, grpcio) keep one ModelStreamInfer
    # stream open and answer each message we send with WINDOW_UPDATEs of the stream and the
    # connection and, now and then, a bandwidth PING: frames that move no request, but
    # acknowledge our answers. Counting them against the streams opened alone ended such a
    # stream after ~1,000 messages.
    reader, writer = await open_echo_stream(stream_echo)
    body = b"\x00\x00\x00\x00\x02hi"
    for i in range(100):  # 300 acknowledging frames, against a budget of 10 (+4 per stream)
        writer.write(frame(DATA, 0, 1, body))
        assert await next_data(reader) == body
        size = len(body).to_bytes(4)
        writer.write(frame(WINDOW_UPDATE, 0, 1, size) + frame(WINDOW_UPDATE, 0, 0, size)
                     + frame(PING, 0, 0, i.to_bytes(8)))  # fmt: skip
    # The same frames with no answer to acknowledge are still a flood.
    writer.write(frame(WINDOW_UPDATE, 0, 0, (1).to_bytes(4)) * 1000)
    assert await goaway_code(reader) == ENHANCE_YOUR_CALM
    writer.close()
    await writer.wait_closed()


async def test_a_window_opened_a_byte_at_a_time_earns_no_frames(stream_echo: int) -> None:
    # A peer that grants one byte of window at a time gets one-byte DATA frames: were they
    # acknowledgeable work, each would pay for more frames that do no work (here PINGs).
    reader, writer = await open_echo_stream(stream_echo, struct.pack(">HI", 4, 1))
    writer.write(frame(DATA, 0, 1, b"\x00" + (100).to_bytes(4) + b"z" * 100))
    assert len(await next_data(reader)) == 1  # the answer waits for window
    writer.write(b"".join(frame(WINDOW_UPDATE, 0, 1, (1).to_bytes(4))
                          + frame(PING, 0, 0, i.to_bytes(8)) for i in range(100)))  # fmt: skip
    assert await goaway_code(reader) == ENHANCE_YOUR_CALM
    writer.close()
    await writer.wait_closed()
