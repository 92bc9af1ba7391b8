"""Auth on vs auth off: V2 JSON throughput of ``linear`` with wrk, as a ratio in one run.

Run ``.venv/bin/python bench/auth.py [--duration 5] [--rounds 2] [--connections 32]``.

It builds the example repository, then alternates two ``inferd serve`` processes (one
worker each): ``--auth off``, and ``--auth on`` with a bootstrap admin key that every
request sends as ``X-API-Key``. Rounds alternate off/on so drift in the machine's load hits
both alike. It prints requests/s and p50/p99 latency per mode and the on/off ratio.
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
) -> tuple[float, float, float]:
    os.environ["INFERD_AUTH"] = mode
    if mode == "on":
        os.environ["INFERD_ADMIN_KEY"] = KEY
    else:
        os.environ.pop("INFERD_ADMIN_KEY", None)
    request = payload("linear", "json")
    if mode == "on":
        request = Payload(request.body, {**request.headers, "X-API-Key": KEY}, request.rows)
    script = write_script(tmp, f"linear-{mode}", request, count_all_status=True)
    with Server(repo, 1, tmp / f"home-{mode}") as server:
        url = f"{server.base_url}/v2/models/linear/infer"
        run_wrk(url, script, args.connections, 2, args.threads)  # warm-up
        result = run_wrk(url, script, args.connections, args.duration, args.threads)
    if result.errors:
        raise RuntimeError(f"auth {mode}: {result.errors} failed requests")
    return result.rps, result.p50_ms, result.p99_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        repo = ensure_examples(tmp / "repo")
        runs: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                runs[mode].append(_measure(mode, repo, tmp, args))
    print(f"{'auth':<5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}   (linear, V2 JSON, "
          f"{args.connections} connections, median of {args.rounds})")  # fmt: skip
    medians = {}
    for mode, points in runs.items():
        rps = statistics.median(p[0] for p in points)
        medians[mode] = rps
        p50 = statistics.median(p[1] for p in points)
        p99 = statistics.median(p[2] for p in points)
        print(f"{mode:<5} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f}")
    print(f"auth on / auth off throughput: {medians['on'] / medians['off']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
