"""Garbage-collector tuning on vs CPython's defaults: V2 JSON throughput and p99 of ``linear``.

Run ``.venv/bin/python bench/gc_tuning.py [--duration 4] [--rounds 6] [--connections 64]``.

Each round starts one ``inferd serve`` (one worker) per mode, in ABBA order so drift in the
machine's speed hits both alike: ``tuned`` (the default: start-up objects frozen, young
threshold 50,000; ``inferd.serving.collector``) and ``default`` (``INFERD_GC_TUNING=false``).
The server runs on CPU 0 and wrk on CPU 1 (``--no-pin`` to share both). After a 3 s warm-up
(the tuned server's start-up collection is over by then), wrk drives it for ``--duration``
seconds. A full collection stops the event loop, so with the defaults it shows in the p99.

Prints requests/s, p50/p99/max latency and server CPU per request per mode (medians), and the
tuned/default ratios of the rounds (medians of the paired ratios).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _server import Server, pin_apart
from _wrk import payload, run_wrk, write_script

from inferd.serving.examples import ensure_examples

MODES = {"tuned": {}, "default": {"INFERD_GC_TUNING": "false"}}


def _measure(
    mode: str, repo: Path, home: Path, script: Path, args: argparse.Namespace
) -> tuple[float, ...]:
    server = Server(repo, 1, home)
    server.extra_env.update(MODES[mode])
    with server:
        if not args.no_pin:
            pin_apart(server)
        url = f"{server.base_url}/v2/models/linear/infer"
        run_wrk(url, script, args.connections, 3, args.threads)  # warm-up, settle() done
        before = server.cpu_seconds()
        result = run_wrk(url, script, args.connections, args.duration, args.threads)
        cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
    if result.errors:
        raise RuntimeError(f"{mode}: {result.errors} failed requests")
    return result.rps, result.p50_ms, result.p99_ms, result.max_ms, cpu_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the two modes (ABBA)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pin", action="store_true", help="server and wrk on any CPU")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, ...]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        repo = ensure_examples(tmp / "repo")
        script = write_script(tmp, "linear", payload("linear", "json"), count_all_status=False)
        for round_ in range(args.rounds):
            order = list(MODES) if round_ % 2 == 0 else list(MODES)[::-1]
            for mode in order:
                home = tmp / f"home-{mode}-{round_}"
                runs[mode].append(_measure(mode, repo, home, script, args))
    setup = f"linear, V2 JSON, {args.connections} connections, median of {args.rounds} rounds"
    print(
        f"{'mode':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'server µs/req':>14}   ({setup})"
    )
    for mode, points in runs.items():
        rps, p50, p99, top, cpu = (statistics.median(p[i] for p in points) for i in range(5))
        print(f"{mode:<8} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {top:>8.1f} {cpu:>14.1f}")
    pairs = list(zip(runs["tuned"], runs["default"], strict=True))
    throughput = statistics.median(on[0] / off[0] for on, off in pairs)
    p99 = statistics.median(on[2] / off[2] for on, off in pairs)
    cpu = statistics.median(on[4] / off[4] for on, off in pairs)
    print(
        f"tuned / default: throughput {throughput:.3f}, p99 {p99:.3f}, server CPU per request "
        f"{cpu:.3f} (medians of the rounds' paired ratios)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
