"""What monitoring costs on the request path, all of it at once, as issue #13 states the budget.

Run ``.venv/bin/python bench/monitoring_cost.py [--duration 2] [--rounds 20] [--connections 64]``.

Three ``inferd serve`` processes (one worker each) on the example repository, all running at
once, each driven in turn by wrk with ``mlp`` V2 JSON requests (no ``traceparent``):

- ``off``: no drift sampling, no prediction log, no tracing (the Prometheus metrics stay: they
  cannot be turned off; bench/metrics_cost.py measures them in-process);
- ``monitoring``: drift sampling at 1% on ``mlp`` (``PUT /v1/models/mlp/drift/settings``, a
  reference built from the first sampled requests) and the prediction log at 1%
  (``--prediction-log-uri`` on a temp folder, ``--prediction-log-rate 0.01``), tracing off;
- ``+tracing 1%``: the same and ``--otlp-endpoint`` (a receiver in this process that counts
  and drops spans) with ``--trace-sample-rate 0.01``.

How, and why: this machine's speed moves by 10-30% from one second to the next, more than the
budget, and a fresh server per mode and round measured 0.945 for an A/A pair (the second of a
round was the slower). So the three servers start first and stay up; each round drives each
for ``--duration`` seconds, the order rotating from round to round, and a mode's cost is the
median over the rounds of its throughput over ``off``'s in the same round. The servers share
CPU 0 (one is driven at a time; the others idle), wrk and the span receiver run on CPU 1
(``--no-pin`` to share both), and wrk runs without a Lua ``response()`` hook (it counts
statuses above 399 itself).

It prints requests/s, p50/p99 and the server's CPU per request per mode (medians over the
rounds), the paired throughput ratios against ``off`` beside the issue's budget (monitoring
< 5%, with tracing at 1% < 10%), and the load average before and after (the machine is
shared: compare only figures from one run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import grpc
from _server import Server, pin_apart
from _wrk import payload, run_wrk, write_script
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from tracing_cost import _load, _Receiver

from inferd.serving.examples import ensure_examples

MODES = ("off", "monitoring", "+tracing 1%")
BUDGET = {"monitoring": 0.05, "+tracing 1%": 0.10}


def _watch_drift(base_url: str) -> None:
    """Sample 1% of ``mlp``'s requests for drift, its reference from the first 1,000 of them."""
    body = json.dumps({"sample_rate": 0.01, "reference_requests": 1000}).encode()
    request = urllib.request.Request(
        f"{base_url}/v1/models/mlp/drift/settings", data=body, method="PUT",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 200:
            raise RuntimeError(f"drift settings: HTTP {answer.status}")


def _server(mode: str, repo: Path, tmp: Path, endpoint: str) -> Server:
    """The (not yet started) server of ``mode``."""
    name = mode.replace(" ", "").replace("+", "").replace("%", "")
    server = Server(repo, 1, tmp / f"home-{name}")
    if mode != "off":
        server.extra_args = [
            "--prediction-log-uri", str(tmp / f"log-{name}"), "--prediction-log-rate", "0.01",
        ]  # fmt: skip
    if mode == "+tracing 1%":
        server.extra_args += ["--otlp-endpoint", endpoint, "--trace-sample-rate", "0.01"]
    return server


def _measure(server: Server, script: Path, args: argparse.Namespace) -> tuple[float, ...]:
    """Drive one server for ``--duration`` seconds: req/s, p50, p99, server CPU µs/request."""
    url = f"{server.base_url}/v2/models/mlp/infer"
    before = server.cpu_seconds()
    result = run_wrk(url, script, args.connections, args.duration, args.threads)
    cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
    if result.errors:
        raise RuntimeError(f"{result.errors} failed requests")
    return result.rps, result.p50_ms, result.p99_ms, cpu_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the three modes")
    parser.add_argument("--no-pin", action="store_true", help="server and wrk on any CPU")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    receiver = _Receiver()
    collector = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    endpoint = f"http://127.0.0.1:{collector.add_insecure_port('127.0.0.1:0')}"
    collector.start()
    load_before = _load()
    runs: dict[str, list[tuple[float, ...]]] = {m: [] for m in MODES}
    try:
        with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
            tmp = Path(folder)
            repo = ensure_examples(tmp / "repo")
            script = write_script(tmp, "mlp", payload("mlp", "json"), count_all_status=False)
            servers = {m: stack.enter_context(_server(m, repo, tmp, endpoint)) for m in MODES}
            for mode, server in servers.items():
                if not args.no_pin:
                    pin_apart(server)
                if mode != "off":
                    _watch_drift(server.base_url)
                url = f"{server.base_url}/v2/models/mlp/infer"
                run_wrk(url, script, args.connections, 2, args.threads)  # warm-up
            for round_ in range(args.rounds):
                shift = round_ % len(MODES)  # each mode first, second and third in turn
                for mode in MODES[shift:] + MODES[:shift]:
                    runs[mode].append(_measure(servers[mode], script, args))
    finally:
        collector.stop(grace=None)
    print(
        f"{'mode':<13} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11}   "
        f"(mlp, V2 JSON, c={args.connections}, median of {args.rounds} x {args.duration} s)"
    )
    rps: dict[str, float] = {}
    for mode, points in runs.items():
        rps[mode] = statistics.median(p[0] for p in points)
        p50, p99, cpu = (statistics.median(p[i] for p in points) for i in (1, 2, 3))
        print(f"{mode:<13} {rps[mode]:>9.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>11.1f}")
    for mode, budget in BUDGET.items():
        paired = statistics.median(
            on[0] / off[0] for on, off in zip(runs[mode], runs["off"], strict=True)
        )
        cost = 1.0 - paired
        print(
            f"{mode} / off throughput: {paired:.3f} (median of the rounds' paired ratios; of "
            f"the medians {rps[mode] / rps['off']:.3f}); cost {cost:+.1%} against a budget "
            f"of {budget:.0%}"
        )
    print(f"spans received: {receiver.spans}")
    print(f"load average (1/5/15 min) before: {load_before}; after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
