"""An experiment running vs none: V2 JSON throughput of ``linear`` with wrk, as a ratio in one run.

Run ``.venv/bin/python bench/experiments.py [--duration 5] [--rounds 2] [--connections 64]``.

Every request carries ``parameters.user_id`` so both modes parse the same body. Modes, each in
a fresh ``inferd serve`` (one worker), alternated per round so drift in the machine's load hits
both alike: ``none`` (no experiment: the data plane's one dict test) and ``running`` (a 50/50
A/A experiment on ``linear`` version 1: hash, table lookup, tally, exposure log,
response parameters and headers). Prints requests/s, p50/p99 latency and server CPU per request
per mode, and the running/none throughput ratio (the issue asks for at least 0.95).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _server import Server
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


def _start_experiment(server: Server) -> None:
    headers = {"content-type": "application/json"}
    status, body, _ = server.request("POST", "/v1/experiments", json.dumps(SPEC).encode(), headers)
    if status != 201:
        raise RuntimeError(f"create: {status} {body!r}")
    exp_id = json.loads(body)["id"]
    status, body, _ = server.request("POST", f"/v1/experiments/{exp_id}/start", b"", headers)
    if status != 200:
        raise RuntimeError(f"start: {status} {body!r}")
    status, _, got = server.request("POST", "/v2/models/linear/infer", BODY, headers)
    if status != 200 or "inferd-experiment-variant" not in got:
        raise RuntimeError("the experiment does not route")


def _measure(mode: str, repo: Path, tmp: Path, args: argparse.Namespace) -> tuple[float, ...]:
    request = Payload(BODY, {"Content-Type": "application/json"}, 1)
    script = write_script(tmp, f"linear-exp-{mode}", request, count_all_status=True)
    with Server(repo, 1, Path(tempfile.mkdtemp(prefix=f"home-{mode}-", dir=tmp))) as server:
        if mode == "running":
            _start_experiment(server)
        url = f"{server.base_url}/v2/models/linear/infer"
        run_wrk(url, script, args.connections, 2, args.threads)  # warm-up
        before = server.cpu_seconds()
        result = run_wrk(url, script, args.connections, args.duration, args.threads)
        cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
    if result.errors:
        raise RuntimeError(f"experiment {mode}: {result.errors} failed requests")
    return result.rps, result.p50_ms, result.p99_ms, cpu_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the two modes")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, ...]]] = {"none": [], "running": []}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        repo = ensure_examples(tmp / "repo")
        for _ in range(args.rounds):
            for mode in runs:
                runs[mode].append(_measure(mode, repo, tmp, args))
    setup = f"linear, V2 JSON, {args.connections} connections, median of {args.rounds}"
    print(f"{'mode':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11}   ({setup})")
    medians = {}
    for mode, points in runs.items():
        rps, p50, p99, cpu = (statistics.median(p[i] for p in points) for i in range(4))
        medians[mode] = (rps, cpu)
        print(f"{mode:<8} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>11.1f}")
    # Each round's two runs are a minute apart at most: the median of the rounds' ratios is
    # less moved by the machine's drift than the ratio of the medians (both printed).
    paired = statistics.median(
        on[0] / off[0] for on, off in zip(runs["running"], runs["none"], strict=True)
    )
    print(
        f"running / none throughput: {medians['running'][0] / medians['none'][0]:.3f} "
        f"(median of the rounds' ratios {paired:.3f}; the issue asks for at least 0.95)"
    )
    extra = medians["running"][1] - medians["none"][1]
    print(f"server CPU per request, running - none: {extra:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
