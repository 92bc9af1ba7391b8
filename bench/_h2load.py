"""Unary gRPC load with h2load (nghttp2's C HTTP/2 load generator), the gRPC peer of wrk.

h2load posts one fixed body, a length-prefixed ``ModelInferRequest``, with the gRPC headers
to ``/inference.GRPCInferenceService/ModelInfer`` on ``concurrency`` streams of one
connection (as a gRPC channel multiplexes its calls), so the load costs little of the
shared CPU. It sees HTTP statuses only: gRPC errors travel in trailers, so the caller counts
them from the server's metrics. ``apt-get install nghttp2-client`` provides it
(``make bench-tools``).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from _grpcload import request_bytes

METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True, slots=True)
class H2loadResult:
    """Requests per second, p99 latency and HTTP-level failures of one run."""

    rps: float
    p99_ms: float
    failed: int


def available() -> bool:
    """Whether h2load is on the PATH."""
    return shutil.which("h2load") is not None


def run_h2load(target: str, model: str, concurrency: int, seconds: int, tmp: Path) -> H2loadResult:
    """Drive ``target`` (host:port) with ModelInfer calls for ``model`` for ``seconds``.

    Raises:
        RuntimeError: h2load failed or printed no result.
    """
    body = request_bytes(model)
    body_file, log = tmp / f"{model}.grpc", tmp / f"{model}-h2load.log"
    body_file.write_bytes(b"\x00" + len(body).to_bytes(4) + body)
    log.unlink(missing_ok=True)
    command = [
        "h2load", "-D", str(seconds), "--warm-up-time", "1", "-c", "1", "-m", str(concurrency),
        "-t", "1", "-d", str(body_file), "--log-file", str(log),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        f"http://{target}{METHOD}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    finished = [ln for ln in done.stdout.splitlines() if ln.startswith("finished in")]
    summary = [ln for ln in done.stdout.splitlines() if ln.startswith("requests:")]
    if done.returncode != 0 or not finished or not summary:
        raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr or done.stdout}")
    rps = float(finished[0].split(",")[1].split()[0])
    counts = dict(
        (part.split()[1], int(part.split()[0]))
        for part in summary[0].removeprefix("requests:").split(",")
    )  # fmt: skip
    # The log has one line per request: start time, HTTP status, microseconds taken.
    latencies = [int(line.split()[2]) for line in log.read_text().splitlines() if line.strip()]
    p99 = statistics.quantiles(latencies, n=100)[98] / 1000 if len(latencies) > 100 else 0.0
    return H2loadResult(rps, p99, counts.get("failed", 0) + counts.get("errored", 0))
