"""Hostile HTTP bodies: time to refusal, server memory, and a valid client's latency beside them.

Run ``.venv/bin/python bench/hostile_bodies.py`` (``--size-mb`` sets the body size). It starts
``inferd serve --workers 1`` on the example repository and, for each case, sends one hostile
V2 JSON body to ``mlp`` while a second client sends small valid ``linear`` requests one after
another on a keep-alive connection. Cases:

- ``count``: shape ``[4, 256]`` but tens of millions of elements in ``data``;
- ``shape``: shape ``[1000000000, 256]`` with the same ``data``;
- ``binary``: the binary extension, ``binary_data_size`` the whole body, shape ``[4, 256]``.

It prints, per case: the status and message of the refusal, the seconds from the first byte
sent to the answer, the server's peak RSS while the case ran (sampled every 5 ms) against its
RSS before, and the valid requests answered while the hostile body was in flight (count, p50,
p99, max latency, longest gap between two answers). Numbers depend on the machine and its
load; note ``uptime`` beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import itertools

from fixtures.servers import Server

from inferd.serving.examples import ensure_examples

VALID = orjson.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
)


def hostile_body(case: str, size: int) -> tuple[bytes, dict[str, str]]:
    """The body and extra headers of one hostile case, about ``size`` bytes."""
    if case == "binary":
        header = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4, 256],
                                           "parameters": {"binary_data_size": size}}]})  # fmt: skip
        return header + bytes(size), {"inference-header-content-length": str(len(header))}
    shape = [4, 256] if case == "count" else [1_000_000_000, 256]
    head = b'{"inputs":[{"name":"x","datatype":"FP32","shape":%s,"data":[' % orjson.dumps(shape)
    count = (size - len(head) - 4) // 4
    return head + b"0.5," * (count - 1) + b"0.5]}]}", {}


def tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and its children (uvicorn's workers), in KiB."""
    total = 0
    for pid in [root, *_children(root)]:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = [int(p) for p in found]
    for child in list(out):
        out.extend(_children(child))
    return out


def send_hostile(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
    """POST ``body`` to mlp on a raw socket; (status, answer body, seconds to the answer)."""
    head = (
        "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        "content-type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    request = head + body  # built before the clock starts: a 60 MB copy holds this GIL
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        with contextlib.suppress(OSError):  # the server may answer before reading it all
            sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    elapsed = time.perf_counter() - start
    status = int(data.split(b" ", 2)[1]) if data else 0
    return status, data.partition(b"\r\n\r\n")[2], elapsed


class ValidClient(threading.Thread):
    """Small valid requests one after another; records (answer time, latency)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"content-type": "application/json"}
        while not self.stop.is_set():
            start = time.perf_counter()
            conn.request("POST", "/v2/models/linear/infer", VALID, headers)
            response = conn.getresponse()
            response.read()
            end = time.perf_counter()
            if response.status != 200:
                self.errors += 1
            self.samples.append((end, end - start))
            time.sleep(0.002)  # ~300-400 requests/s: a steady probe, not a load test
        conn.close()

    def window(self, start: float, end: float) -> dict[str, float]:
        """Latency statistics (ms) of the requests answered between ``start`` and ``end``."""
        inside = [(t, lat) for t, lat in self.samples if start <= t <= end + 0.5]
        lats = sorted(lat * 1000 for _, lat in inside)
        times = [start] + [t for t, _ in inside]
        gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0) * 1000
        if not lats:
            return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0, "gap": (end - start) * 1000}
        return {
            "n": len(lats),
            "p50": lats[len(lats) // 2],
            "p99": lats[min(len(lats) - 1, int(len(lats) * 0.99))],
            "max": lats[-1],
            "gap": gap,
        }


def run_case(server: Server, case: str, size: int) -> None:
    body, headers = hostile_body(case, size)
    client = ValidClient(server.port)
    client.start()
    time.sleep(1.0)
    base = client.window(time.perf_counter() - 0.9, time.perf_counter())
    rss_before = tree_rss_kib(server.proc.pid)
    peak = [rss_before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib(server.proc.pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    status, answer, elapsed = send_hostile(server.port, body, headers)
    end = time.perf_counter()
    time.sleep(0.3)
    done.set()
    sampler.join()
    client.stop.set()
    client.join()
    during = client.window(start, end)
    print(f"\n[{case}] {len(body) / 1e6:.1f} MB -> {status} in {elapsed:.2f} s")
    print(f"  message: {answer[:200].decode(errors='replace')}")
    print(f"  server RSS: {rss_before / 1024:.0f} MiB before, peak {peak[0] / 1024:.0f} MiB")
    print(f"  valid before: n={base['n']:.0f} p50={base['p50']:.1f} ms max={base['max']:.1f} ms")
    print(
        f"  valid during: n={during['n']:.0f} p50={during['p50']:.1f} ms "
        f"p99={during['p99']:.1f} ms max={during['max']:.1f} ms "
        f"longest gap={during['gap']:.1f} ms errors={client.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=60.0, help="hostile body size (MB)")
    parser.add_argument(
        "--cases", default="count,shape,binary", help="comma-separated: count, shape, binary"
    )
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = ensure_examples(Path(tmp) / "repo")
        home = Path(tmp) / "home"
        home.mkdir()
        with Server(repo, home, workers=1) as server:
            for case in args.cases.split(","):
                run_case(server, case, int(args.size_mb * 1e6))
    print(f"\nload average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
