"""An experiment running vs switched off: V2 JSON throughput of ``linear`` with wrk, in one run.

Run ``.venv/bin/python bench/experiments.py [--duration 1] [--rounds 60] [--connections 64]``.

One ``inferd serve`` (one worker) with a 50/50 A/A experiment on ``linear`` version 1 (hash,
table lookup, tally, sampled exposure log, response parameters and headers, the flush every
5 s). The two modes are the same server with the experiment ``running`` and ``paused``: a
paused experiment is not in the traffic policy's live table, so the serving path does what it
does with no experiment at all (one dict test). Every request carries
``parameters.user_id`` so both modes parse the same body.

The server runs on CPU 0 and wrk on CPU 1 (``--no-pin`` to share both). Why one server and
not one per mode: a fresh server per mode measured 0.945 for an A/A run of
this script with no experiment in either (the second server of each round was the slower), an
error as large as the 5% the issue allows. Rounds run in ABBA order, so drift in the machine's
speed hits both modes alike; this machine's speed moves by 10-30% from one second to the
next, so the result is the median of many short rounds' paired ratios (and the ratio of all
their requests), with a bootstrap interval that says how precise that median is. The server
polls the registry every 0.2 s so that a pause or resume takes effect at once.

Prints requests/s, p50/p99 latency, server and wrk CPU per request per mode (medians), the paired
running/off throughput ratio (the issue asks for at least 0.95), and the CPU difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _paired import median_interval
from _server import Server, pin_apart
from _wrk import Payload, run_wrk, write_script

from inferd.serving.examples import ensure_examples

BODY = (
    b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.5]}],'
    b'"parameters":{"user_id":"user-17"}}'
)
SPEC = {
    "name": "bench",
    "model": "linear",
    "variants": [
        {"name": "control", "version": 1, "weight": 0.5},
        {"name": "treatment", "version": 1, "weight": 0.5},
    ],
}  # fmt: skip  (an A/A test: the examples have one version of linear; routing costs the same)
JSON = {"content-type": "application/json"}
MODES = ("off", "running")
POLL_S = 0.2


def _routed(server: Server) -> bool:
    """Whether the experiment routes requests now (its variant header is in the answer)."""
    status, body, got = server.request("POST", "/v2/models/linear/infer", BODY, JSON)
    if status != 200:
        raise RuntimeError(f"infer: {status} {body!r}")
    return "inferd-experiment-variant" in got


def _action(server: Server, exp_id: str, action: str) -> None:
    """Start, pause or resume the experiment, then wait until the server routes accordingly
    (each process reloads its routing table within its poll interval)."""
    status, body, _ = server.request("POST", f"/v1/experiments/{exp_id}/{action}", b"", JSON)
    if status != 200:
        raise RuntimeError(f"{action}: {status} {body!r}")
    deadline = time.monotonic() + 30
    while _routed(server) != (action != "pause"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{action}: the routing did not follow within 30 s")
        time.sleep(0.05)


def _create(server: Server) -> str:
    status, body, _ = server.request("POST", "/v1/experiments", json.dumps(SPEC).encode(), JSON)
    if status != 201:
        raise RuntimeError(f"create: {status} {body!r}")
    exp_id = str(json.loads(body)["id"])
    _action(server, exp_id, "start")
    return exp_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=1, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=60, help="rounds of the two modes (ABBA)")
    parser.add_argument("--no-pin", action="store_true", help="leave the server and wrk on any CPU")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, ...]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        repo = ensure_examples(tmp / "repo")
        # No Lua response() hook: it hands wrk every answer's headers and body, and the running
        # mode's answers carry two more headers, so wrk (on the same cores) would take more
        # CPU from the server in one mode only. wrk counts statuses above 399 itself.
        script = write_script(tmp, "linear-exp", Payload(BODY, JSON, 1), count_all_status=False)
        server = Server(repo, 1, tmp / "home")
        # Pause and resume reach the routing table within a poll: a short one keeps the
        # switches quick, so that the two modes of a round run close together in time (the
        # registry poll runs in both modes alike).
        server.extra_env["INFERD_POLL_INTERVAL_S"] = str(POLL_S)
        with server:
            exp_id = _create(server)
            if not args.no_pin:  # wrk on its own core: the answers' size differs by mode
                pin_apart(server)
            url = f"{server.base_url}/v2/models/linear/infer"
            run_wrk(url, script, args.connections, 2, args.threads)  # warm-up
            running = True
            for round_ in range(args.rounds):
                order = MODES if round_ % 2 == 0 else MODES[::-1]
                for mode in order:
                    if (mode == "running") != running:
                        _action(server, exp_id, "resume" if mode == "running" else "pause")
                        running = mode == "running"
                    before = server.cpu_seconds()
                    result = run_wrk(url, script, args.connections, args.duration, args.threads)
                    cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
                    if result.errors:
                        raise RuntimeError(f"{mode}: {result.errors} failed requests: {result}")
                    wrk_us = result.cpu_s / max(result.requests, 1) * 1e6
                    runs[mode].append((result.rps, result.p50_ms, result.p99_ms, cpu_us, wrk_us))
    setup = f"linear, V2 JSON, {args.connections} connections, median of {args.rounds} rounds"
    print(
        f"{'mode':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'server µs/req':>14} "
        f"{'wrk µs/req':>11}   ({setup})"
    )
    for mode, points in runs.items():
        rps, p50, p99, cpu, wrk = (statistics.median(p[i] for p in points) for i in range(5))
        print(f"{mode:<8} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>14.1f} {wrk:>11.1f}")
    pairs = list(zip(runs["running"], runs["off"], strict=True))
    ratios = [on[0] / off[0] for on, off in pairs]
    print("per round running / off:", " ".join(f"{r:.3f}" for r in ratios))
    total = sum(on[0] for on, _ in pairs) / sum(off[0] for _, off in pairs)
    low, high = median_interval(ratios)
    print(
        f"running / off throughput: {statistics.median(ratios):.3f} (median of the rounds' "
        f"paired ratios; 95% bootstrap interval {low:.3f}-{high:.3f}), {total:.3f} (all rounds' "
        "requests); the issue asks for at least 0.95"
    )
    extra = statistics.median(on[3] - off[3] for on, off in pairs)
    print(f"server CPU per request, running - off: {extra:+.1f} µs (median of the pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
