"""Hot-swap benchmark: promote a new version under continuous load and count what breaks.

Run ``.venv/bin/python bench/swap.py`` (about 15 s). It serves ``linear`` (v1: y = 2x + 1,
v2: y = 3x + 1) with ``--workers 1``, makes v1 production, drives ``--connections``
keep-alive connections in closed loop, promotes v2 through ``POST /v1/.../promote`` in the
middle, and prints, from one run:

- requests during the swap window (promote call start to 1 s after it returned), failures
  (must be 0), and answers that were neither v1's nor v2's value;
- p50/p99 latency before the swap vs during it (ratio);
- how long after the promote call returned the last v1 answer came (the switch, <= 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server

from inferd.serving.examples import build_linear_onnx, ensure_examples

BODY = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}'
ANSWERS = {b"3.0": "1", b"4.0": "2"}


@dataclass(slots=True)
class Sample:
    start: float
    latency: float
    status: int
    version: str


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            key, value = line.split(b":", 1)
            headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


async def client(port: int, stop: asyncio.Event, out: list[Sample]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /v2/models/linear/infer HTTP/1.1\r\nhost: bench\r\n"
        b"content-type: application/json\r\ncontent-length: "
        + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
    )  # fmt: skip
    while not stop.is_set():
        start = time.perf_counter()
        writer.write(request)
        try:
            status, headers, body = await _read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            out.append(Sample(start, time.perf_counter() - start, 0, "?"))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        value = next((v for k, v in ANSWERS.items() if k in body), "?")
        version = headers.get(b"x-model-version", b"?").decode()
        if status == 200 and value != version:
            status = -1  # a wrong answer counts as a failure
        out.append(Sample(start, time.perf_counter() - start, status, version))
    writer.close()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


async def drive(server: Server, connections: int, before_s: float, after_s: float) -> dict:  # type: ignore[type-arg]
    samples: list[Sample] = []
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(client(server.port, stop, samples)) for _ in range(connections)]
    await asyncio.sleep(before_s)
    promote_start = time.perf_counter()
    status, body, _ = await asyncio.to_thread(
        server.request, "POST", "/v1/models/linear/versions/2/promote", b"", {}
    )
    promote_end = time.perf_counter()
    await asyncio.sleep(after_s)
    stop.set()
    await asyncio.gather(*tasks)
    if status != 200:
        raise RuntimeError(f"promote failed: {status} {body!r}")
    window = [s for s in samples if promote_start <= s.start <= promote_end + 1.0]
    before = [s for s in samples if s.start < promote_start]
    last_v1 = max((s.start + s.latency for s in samples if s.version == "1"), default=0.0)
    first_v2 = min((s.start + s.latency for s in samples if s.version == "2"), default=0.0)
    return {
        "requests": len(samples),
        "req_per_s": len(samples) / (before_s + (promote_end - promote_start) + after_s),
        "swap_window_requests": len(window),
        "failures": sum(1 for s in samples if s.status != 200),
        "promote_call_s": promote_end - promote_start,
        "first_v2_after_call_start_s": first_v2 - promote_start,
        "last_v1_after_call_return_s": max(last_v1 - promote_end, 0.0),
        "p50_before_ms": percentile([s.latency for s in before], 50),
        "p99_before_ms": percentile([s.latency for s in before], 99),
        "p50_swap_ms": percentile([s.latency for s in window], 50),
        "p99_swap_ms": percentile([s.latency for s in window], 99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--before", type=float, default=4.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=4.0, help="seconds of load after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferd-swap-") as tmp:
        root = Path(tmp)
        repo = ensure_examples(root / "repo")
        build_linear_onnx(repo / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
        config = repo / "linear" / "model.yaml"
        config.write_text(config.read_text() + "version_policy: all\n")
        with Server(repo, workers=1, home=root / "home") as server:
            path = "/v1/models/linear/versions/1/promote"
            status, body, _ = server.request("POST", path, b"", {})
            if status != 200:
                raise RuntimeError(f"setup promote failed: {status} {body!r}")
            result = asyncio.run(drive(server, args.connections, args.before, args.after))
    print(json.dumps(result, indent=2))
    ok = result["failures"] == 0 and result["last_v1_after_call_return_s"] <= 1.0
    print(
        f"\nswap under load: {result['req_per_s']:.0f} req/s, {result['swap_window_requests']} "
        f"requests in the swap window, {result['failures']} failures "
        f"({'PASS' if result['failures'] == 0 else 'FAIL'}: must be 0)\n"
        f"p99 during swap / before: {result['p99_swap_ms']:.2f} / {result['p99_before_ms']:.2f} ms"
        f" = {result['p99_swap_ms'] / result['p99_before_ms']:.2f}x\n"
        f"last v1 answer {result['last_v1_after_call_return_s'] * 1000:.0f} ms after the promote "
        f"call returned ({'PASS' if ok else 'FAIL'}: <= 1 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
