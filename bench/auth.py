"""Auth on vs auth off: V2 JSON throughput of ``linear`` with wrk, as a ratio in one run.

Run ``.venv/bin/python bench/auth.py [--duration 5] [--rounds 2] [--connections 32]``.

It builds the example repository, then alternates three ``inferd serve`` processes (one
worker each): ``--auth off``; ``--auth off`` with requests that still carry the key header
(``off+hdr``: what the extra header alone costs the HTTP parser and the load generator); and
``--auth on`` with a bootstrap admin key that every request sends as ``X-API-Key``. Rounds
alternate the modes so drift in the machine's load hits all alike. It prints requests/s and
p50/p99 latency per mode, the on/off ratio, and the on/(off+hdr) ratio: inferd's own cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _server import Server
from _wrk import Payload, payload, run_wrk, write_script

from inferd.serving.examples import ensure_examples

KEY = "bench-admin-key-0123456789abcdef"


def _measure(
    mode: str, repo: Path, tmp: Path, args: argparse.Namespace
) -> tuple[float, float, float, float]:
    os.environ["INFERD_AUTH"] = "on" if mode == "on" else "off"
    if mode == "on":
        os.environ["INFERD_ADMIN_KEY"] = KEY
    else:
        os.environ.pop("INFERD_ADMIN_KEY", None)
    request = payload("linear", "json")
    if mode != "off":
        request = Payload(request.body, {**request.headers, "X-API-Key": KEY}, request.rows)
    script = write_script(tmp, f"linear-{mode.replace('+', '-')}", request,
                          count_all_status=True)  # fmt: skip
    with Server(repo, 1, tmp / f"home-{mode.replace('+', '-')}") as server:
        url = f"{server.base_url}/v2/models/linear/infer"
        run_wrk(url, script, args.connections, 2, args.threads)  # warm-up
        before = server.cpu_seconds()
        result = run_wrk(url, script, args.connections, args.duration, args.threads)
        cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
    if result.errors:
        raise RuntimeError(f"auth {mode}: {result.errors} failed requests")
    return result.rps, result.p50_ms, result.p99_ms, cpu_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three modes")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        repo = ensure_examples(tmp / "repo")
        runs: dict[str, list[tuple[float, float, float, float]]] = {
            "off": [],
            "off+hdr": [],
            "on": [],
        }
        for _ in range(args.rounds):
            for mode in runs:
                runs[mode].append(_measure(mode, repo, tmp, args))
    print(f"{'auth':<7} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11}   "
          f"(linear, V2 JSON, "
          f"{args.connections} connections, median of {args.rounds})")  # fmt: skip
    medians, cpu = {}, {}
    for mode, points in runs.items():
        rps = statistics.median(p[0] for p in points)
        medians[mode] = rps
        p50 = statistics.median(p[1] for p in points)
        p99 = statistics.median(p[2] for p in points)
        cpu[mode] = statistics.median(p[3] for p in points)
        print(f"{mode:<7} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {cpu[mode]:>11.1f}")
    print(f"auth on / auth off throughput: {medians['on'] / medians['off']:.3f}")
    print(f"auth on / auth off with the same header: {medians['on'] / medians['off+hdr']:.3f}")
    extra = cpu["on"] - cpu["off+hdr"]
    print(f"server CPU per request, on - (off+hdr): {extra:.1f} µs "
          f"({extra / cpu['off+hdr']:.1%} of the server's CPU per request)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
