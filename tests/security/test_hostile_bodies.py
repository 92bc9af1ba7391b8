"""Large hostile HTTP bodies are refused from their declarations, before their data is parsed,
and do not stall the event loop (issue 11, "no request stalls the loop").

In-process: what a large body is checked against (the server's limits, the model's
signature) and that large valid bodies still decode. Against a real `inferd serve
--workers 1`: a 60 MB body whose element count contradicts its shape, and one with a huge
shape, are refused while valid requests keep being answered. The measured run (time to
refusal, server RSS, latency) is bench/hostile_bodies.py.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import itertools
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from fixtures.servers import Server

from inferd.api.app import build_app
from inferd.protocol._prescan import PRESCAN_BYTES
from inferd.settings import Settings

HOSTILE_BYTES = 60_000_000
STALL_BOUND_S = 0.050  # the bound on a valid request's latency beside the attack
RSS_BOUND_MB = 400  # before the pre-scan, the 60 MB body took the server from ~200 to ~1100
PROBES = 2
VALID = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]})


def v2(shape: list[int], data: bytes, datatype: str = "FP32") -> bytes:
    head = orjson.dumps({"name": "x", "datatype": datatype, "shape": shape})[:-1]
    return b'{"inputs":[%s,"data":%s}]}' % (head, data)


# -- in-process ------------------------------------------------------------------------------


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(home=tmp_path, model_repository=repo, max_tensor_elements=2_000_000)
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await app.dataplane.stop()


# Data that would not parse ("nul"): each refusal below comes before any data is parsed.
UNPARSED = b"[" + b"0.5," * (PRESCAN_BYTES // 4) + b"nul]"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (v2([4100, 256], UNPARSED, "INT32"), 400, "input 'x'.datatype: expected FP32, got INT32"),
        (v2([4100, 256, 1], UNPARSED), 400, "input 'x'.shape: expected rank 2 like [-1, 256]"),
        (v2([4100, 255], UNPARSED), 400, "input 'x'.shape[1]: expected 256 (model shape"),
        (
            v2([8000, 256], UNPARSED),
            413,
            "input 'x' elements: expected at most 2000000, got 2048000; send less per request "
            "or raise INFERD_MAX_TENSOR_ELEMENTS",
        ),
        (
            v2([4, 256], UNPARSED),
            400,
            f"inputs[0] 'x'.data: expected 1024 elements for shape [4, 256], got "
            f"{PRESCAN_BYTES // 4 + 1}",
        ),
    ],
)
async def test_a_large_body_is_refused_from_its_declaration(
    client: httpx.AsyncClient, body: bytes, status: int, message: str
) -> None:
    r = await client.post("/v2/models/mlp/infer", content=body)
    assert r.status_code == status, r.text
    assert r.json()["error"].startswith(message), r.text


async def test_a_large_valid_body_is_served_as_a_small_one(client: httpx.AsyncClient) -> None:
    x = np.random.default_rng(1).standard_normal((600, 256)).astype(np.float32)
    big = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [600, 256], "data": x}]}
    body = orjson.dumps(big, option=orjson.OPT_SERIALIZE_NUMPY)
    assert len(body) > PRESCAN_BYTES
    r = await client.post("/v2/models/mlp/infer", content=body)
    assert r.status_code == 200, r.text
    small = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 256], "data": x[-1:]}]}
    one = await client.post(
        "/v2/models/mlp/infer", content=orjson.dumps(small, option=orjson.OPT_SERIALIZE_NUMPY)
    )
    assert r.json()["outputs"][0]["shape"] == [600, 10]
    last = np.array(r.json()["outputs"][0]["data"], np.float32)[-10:]
    assert np.allclose(last, one.json()["outputs"][0]["data"], rtol=1e-4, atol=1e-5)


async def test_a_large_predict_body(client: httpx.AsyncClient) -> None:
    values = np.arange(65_000) / 7 + 0.001  # about 18 bytes each
    body = orjson.dumps({"model_name": "linear", "input_data": {"x": values.tolist()}})
    assert len(body) > PRESCAN_BYTES
    r = await client.post("/predict", content=body)
    assert r.status_code == 200, r.text
    assert np.allclose(r.json()["predictions"]["y"], 3 * values + 1, rtol=1e-6)  # version 2
    many = b'{"model_name":"linear","input_data":{"x":[%s0]}}' % (b"0," * 2_000_000)
    r = await client.post("/predict", content=many)
    assert r.status_code == 413, r.text
    assert r.json()["error"].startswith("input 'x' elements: expected at most 2000000, got")


async def test_a_compressed_body_is_not_inflated(client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b"[" + b"0," * 5_000_000 + b"0]")  # 10 MB of JSON in about 10 KB
    for encoding in ("gzip", "deflate"):
        headers = {"content-encoding": encoding, "content-type": "application/json"}
        r = await client.post("/v2/models/mlp/infer", content=bomb, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("body: expected a JSON object, got invalid JSON")


async def test_a_large_management_body_is_refused(client: httpx.AsyncClient) -> None:
    body = b'{"description":"%s"}' % (b"a" * (2 << 20))
    r = await client.patch("/v1/models/mlp", content=body)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == (
        "request body: expected at most 1048576 bytes for /v1 (management requests are small "
        f"JSON documents), got {len(body)}"
    )


# -- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("hostile-bodies")
    shutil.copytree(examples_dir, home / "repo")
    with Server(home / "repo", home) as running:
        yield running


class Probe(threading.Thread):
    """Valid `linear` requests back to back on one keep-alive connection; answer times."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.answers: list[tuple[float, float]] = []  # (answered at, latency)
        self.failures: list[str] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self.stop.is_set():
                start = time.perf_counter()
                conn.request("POST", "/v2/models/linear/infer", VALID)
                response = conn.getresponse()
                body = response.read()
                end = time.perf_counter()
                if response.status != 200:
                    self.failures.append(f"{response.status} {body[:200]!r}")
                self.answers.append((end, end - start))
                time.sleep(0.001)  # leave the 2 cores to the server and the attacker
        finally:
            conn.close()


def longest_gap(probes: list[Probe], start: float, end: float) -> float:
    """Longest time in [start, end] without an answer to any probe: a stalled loop answers
    no one, while a probe's own scheduling delays only hold up that probe."""
    times = sorted(t for p in probes for t, _ in p.answers if start <= t <= end)
    return max(b - a for a, b in itertools.pairwise([start, *times, end]))


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def send(port: int, request: bytes) -> tuple[int, bytes]:
    """Send a whole HTTP request on a raw socket; the answer's (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # it may be answered before it is all sent
            sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer.partition(b"\r\n\r\n")[2]


def hostile(shape: list[int]) -> bytes:
    """The whole HTTP request, built before the clock starts: in this process a 60 MB copy
    would hold the GIL, and the probes with it."""
    count = (HOSTILE_BYTES - 80) // 4
    body = v2(shape, b"[" + b"0.5," * (count - 1) + b"0.5]")
    head = (
        b"POST /v2/models/mlp/infer HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    ) % len(body)
    return head + body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "status", "message"),
    [
        (
            [4, 256],
            400,
            f"inputs[0] 'x'.data: expected 1024 elements for shape [4, 256], got "
            f"{(HOSTILE_BYTES - 80) // 4}",
        ),
        (
            [1_000_000_000, 256],
            413,
            "input 'x' elements: expected at most 67108864, got 256000000000; send less per "
            "request or raise INFERD_MAX_TENSOR_ELEMENTS",
        ),
    ],
    ids=["count", "shape"],
)
def test_a_60mb_hostile_body_is_refused_without_stalling_the_loop(
    server: Server, shape: list[int], status: int, message: str
) -> None:
    body = hostile(shape)
    probes = [Probe(server.port) for _ in range(PROBES)]
    for probe in probes:
        probe.start()
    try:
        time.sleep(2.0)  # the machine's own noise, measured with the same probes
        quiet = longest_gap(probes, time.perf_counter() - 1.5, time.perf_counter())
        rss_before = peak_rss_mb(server.proc.pid)
        start = time.perf_counter()
        got_status, answer = send(server.port, body)
        end = time.perf_counter()
        time.sleep(0.1)
    finally:
        for probe in probes:
            probe.stop.set()
        for probe in probes:
            probe.join(30)
    assert (got_status, orjson.loads(answer)["error"]) == (status, message)
    assert end - start < 10.0
    assert [f for p in probes for f in p.failures] == []
    during = [lat for p in probes for t, lat in p.answers if start <= t <= end + 0.1]
    assert len(during) >= 5, "no valid request was answered while the body was in flight"
    stall = longest_gap(probes, start, end)
    # The bound holds above the scheduling noise of this (shared, 2-core) machine, measured
    # just before: a decode on the loop stalled it for seconds.
    assert stall < STALL_BOUND_S + quiet, (
        f"longest gap between valid answers {stall * 1000:.0f} ms (noise before "
        f"{quiet * 1000:.0f} ms); slowest valid request {max(during) * 1000:.0f} ms"
    )
    growth = peak_rss_mb(server.proc.pid) - rss_before
    assert growth < RSS_BOUND_MB, f"server peak RSS grew {growth:.0f} MiB"
