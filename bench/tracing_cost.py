"""What tracing costs: ``mlp`` V2 JSON throughput with tracing off, on at 1% and at 100%.

Run ``.venv/bin/python bench/tracing_cost.py [--duration 5] [--rounds 3] [--connections 64]``.

It builds the example repository and starts an OTLP/gRPC trace receiver in this process (the
collector's TraceService from opentelemetry-proto; it counts spans and drops them). Then it
alternates three ``inferd serve`` processes (one worker each): no ``--otlp-endpoint``;
``--otlp-endpoint`` with ``--trace-sample-rate 0.01``; and with ``1.0``. wrk sends requests
without a ``traceparent``, so the rate alone decides. Rounds alternate the modes so drift in
the machine's load hits all alike. It prints requests/s, p50/p99, the server's CPU per request
and the spans received per mode, the on/off throughput ratios (of the medians, and the median
of each round's ratio; the issue's goal: 1% sampling costs less than 10%), and the load
average before and after (the machine is shared). ``--rates 0,0.01,1`` adds a 0% server:
tracing on with nothing sampled.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from _server import Server
from _wrk import payload, run_wrk, write_script
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from inferd.serving.examples import ensure_examples


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Counts the spans exported to it."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


def _measure(
    rate: float | None, repo: Path, tmp: Path, endpoint: str, receiver: _Receiver,
    args: argparse.Namespace,
) -> tuple[float, float, float, float, int]:  # fmt: skip
    mode = _label(rate)
    name = "off" if rate is None else f"rate-{rate:g}"
    script = write_script(tmp, f"mlp-{name}", payload("mlp", "json"), count_all_status=True)
    server = Server(repo, 1, tmp / f"home-{name}")
    if rate is not None:
        server.extra_args = ["--otlp-endpoint", endpoint, "--trace-sample-rate", str(rate)]
    with server:
        url = f"{server.base_url}/v2/models/mlp/infer"
        run_wrk(url, script, args.connections, 2, args.threads)  # warm-up
        before, spans_before = server.cpu_seconds(), receiver.spans
        result = run_wrk(url, script, args.connections, args.duration, args.threads)
        cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
    spans = receiver.spans - spans_before  # the server's exit flushed what it still held
    if result.errors:
        raise RuntimeError(f"tracing {mode}: {result.errors} failed requests")
    return result.rps, result.p50_ms, result.p99_ms, cpu_us, spans


def _label(rate: float | None) -> str:
    return "off" if rate is None else f"{rate * 100:g}%"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three modes")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rates", default="0.01,1", help="comma-separated sample rates measured against off"
    )
    args = parser.parse_args()
    rates: list[float | None] = [None, *(float(r) for r in args.rates.split(","))]
    receiver = _Receiver()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    load_before = _load()
    runs: dict[str, list[tuple[float, float, float, float, int]]] = {_label(r): [] for r in rates}
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            repo = ensure_examples(tmp / "repo")
            for _ in range(args.rounds):
                for rate in rates:
                    point = _measure(rate, repo, tmp, f"http://127.0.0.1:{port}", receiver, args)
                    runs[_label(rate)].append(point)
    finally:
        server.stop(grace=None)
    print(f"{'tracing':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11} "
          f"{'spans':>9}   (mlp, V2 JSON, c={args.connections}, "
          f"median of {args.rounds} x {args.duration} s)")  # fmt: skip
    rps: dict[str, float] = {}
    for mode, points in runs.items():
        rps[mode] = statistics.median(p[0] for p in points)
        p50, p99, cpu = (statistics.median(p[i] for p in points) for i in (1, 2, 3))
        spans = statistics.median(p[4] for p in points)
        print(f"{mode:<8} {rps[mode]:>9.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>11.1f} {spans:>9.0f}")
    for mode in list(runs)[1:]:
        # Each round's ratio pairs servers measured a minute apart: steadier on a shared machine.
        paired = statistics.median(
            on[0] / off[0] for on, off in zip(runs[mode], runs["off"], strict=True)
        )
        print(f"tracing {mode} / off throughput: {rps[mode] / rps['off']:.3f} "
              f"(median of the rounds' ratios {paired:.3f})")  # fmt: skip
    print(f"load average (1/5/15 min) before: {load_before}; after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
