"""No shadow vs 10% shadow traffic: the client's p99 and throughput on ``linear``, in one run.

Run ``.venv/bin/python bench/shadow.py [--duration 2] [--rounds 30] [--connections 64]
[--fraction 0.1]``.

The repository is the built-in examples plus a second ``linear`` version (y = 3x + 1), so
the default (highest) version 2 answers the clients and version 1 is the shadow. wrk sends
V2 JSON with a distinct request ``id`` per request (a Lua ``request()`` hook, in both modes
alike), so the shadow samples by request id as in production. One ``inferd serve`` (one
worker, CPU 0; wrk on CPU 1) runs both modes, switched through the API before each
measurement: ``none`` (no shadow: the data plane's one dict test) and ``shadow``
(``--fraction`` of requests mirrored to version 1 after the answer, at background priority).
The registry is polled every 0.2 s, so a switch applies within a poll; the bench waits three.
Rounds run in ABBA order. This machine's speed moves by 10-30% from one second to the next,
and a fresh server per mode (this bench until 2026-12-05) read client p99 ratios from 0.95 to
1.35 for the same code; so each round's two modes are paired, and the result is the median
of the paired ratios with a bootstrap interval. Prints requests/s, p50/p99 latency and server
CPU per request per mode (medians), the paired shadow/none p99 and throughput ratios (the
issue asks for a client p99 within 10% of no shadow), and what the shadow did (mirrored,
compared, dropped, agreement) from ``/v1/models/linear/shadow/results``.

``--in-process`` measures instead, in this process and without HTTP, the data plane's CPU
time per request with no shadow and with every request mirrored (fraction 1): the difference
is the CPU one shadow copy costs (copy, background-priority run, comparison, sums, metrics),
a figure much less sensitive to a busy machine than latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _paired import median_interval
from _server import Server, pin_apart
from _wrk import MARKER, run_wrk

from inferd.api.app import build_app
from inferd.serving.dataplane import DataPlane
from inferd.serving.examples import build_linear_onnx, ensure_examples
from inferd.settings import Settings
from inferd.traffic.shadow_config import ShadowConfig
from inferd.types import InferenceRequest

MODES = ("none", "shadow")
POLL_S = 0.2
_LUA = """\
local threads = {}
local counter = 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"id":"t' .. tid .. '-' .. counter ..
    '","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.5]}]}')
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    "MARKER", summary.requests, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
    math.floor(latency:percentile(99)), math.floor(latency.max)))
end
"""


def _repository(root: Path) -> Path:
    repo = ensure_examples(root)
    build_linear_onnx(repo / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
    config = repo / "linear" / "model.yaml"
    config.write_text(config.read_text() + "version_policy: all\n")
    return repo


def _call(server: Server, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    status, answer, _ = server.request(method, path, data, {"content-type": "application/json"})
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {answer!r}")
    return json.loads(answer)


def _switch(server: Server, mode: str, fraction: float) -> None:
    """Mirror ``fraction`` of the traffic (``shadow``) or none; then wait three polls."""
    if mode == "shadow":
        _call(server, "PUT", "/v1/models/linear/shadow", {"version": 1, "fraction": fraction})
    else:
        status, answer, _ = server.request("DELETE", "/v1/models/linear/shadow", None, {})
        if status not in (200, 204, 404):
            raise RuntimeError(f"DELETE /v1/models/linear/shadow: {status} {answer!r}")
    time.sleep(3 * POLL_S)


def _live(
    repo: Path, tmp: Path, args: argparse.Namespace
) -> tuple[dict[str, list[tuple[float, ...]]], dict[str, Any] | None]:
    script = tmp / "shadow.lua"
    script.write_text(_LUA.replace('"MARKER"', json.dumps(MARKER)))
    runs: dict[str, list[tuple[float, ...]]] = {"none": [], "shadow": []}
    server = Server(repo, 1, tmp / "home")
    server.extra_env["INFERD_POLL_INTERVAL_S"] = str(POLL_S)
    with server:
        if not args.no_pin:
            pin_apart(server)
        url = f"{server.base_url}/v2/models/linear/infer"
        _switch(server, "shadow", args.fraction)
        run_wrk(url, script, args.connections, 2, args.threads)  # warm-up, both versions
        measured_drops = 0
        for round_ in range(args.rounds):
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                _switch(server, mode, args.fraction)
                drops = _dropped(server)
                before = server.cpu_seconds()
                result = run_wrk(url, script, args.connections, args.duration, args.threads)
                cpu_us = (server.cpu_seconds() - before) / max(result.requests, 1) * 1e6
                measured_drops += _dropped(server) - drops
                if result.errors:
                    raise RuntimeError(f"{mode}: {result.errors} failed requests: {result}")
                runs[mode].append((result.rps, result.p50_ms, result.p99_ms, cpu_us))
        pairs = _call(server, "GET", "/v1/models/linear/shadow/results")["pairs"]
    if pairs:
        pairs[0]["dropped_measuring"] = measured_drops
    return runs, (pairs[0] if pairs else None)


def _dropped(server: Server) -> int:
    """Copies dropped so far (all pairs, this process: one worker)."""
    pairs = _call(server, "GET", "/v1/models/linear/shadow/results")["pairs"]
    return sum(int(p["dropped"]) for p in pairs)


def _shadow_line(pair: dict[str, Any]) -> str:
    latency = pair["shadow_latency_ms"]
    return (f"  shadow (all shadow rounds, warm-up included): {pair['sampled']} sampled, "
            f"{pair['compared']} compared, {pair['failed']} failed, {pair['dropped']} dropped: "
            f"{pair['dropped_measuring']} while measuring, the rest queued or gathering when "
            f"the bench switched the shadow off;"
            f" mean |diff| {pair['mean_abs_diff']:.3g} (expected 1.5); shadow latency ms "
            f"p50 {latency['p50']:.2f} p99 {latency['p99']:.2f}")  # fmt: skip


async def _cpu_per_request(plane: DataPlane, count: int, tag: str) -> float:
    x = np.array([1.5], dtype=np.float32)
    requests = [InferenceRequest("linear", None, {"x": x}, id=f"{tag}{i}") for i in range(count)]
    start = time.process_time()
    for i in range(0, count, 64):  # 64 in flight, as with 64 connections
        await asyncio.gather(*(plane.infer(r, "bench") for r in requests[i : i + 64]))
    await plane.traffic.shadow.idle()
    return (time.process_time() - start) / count * 1e6


async def _in_process(repo: Path, home: Path, rounds: int) -> None:
    plane = build_app(Settings(home=home, model_repository=repo)).dataplane
    await plane.start()
    await _cpu_per_request(plane, 2000, "warm-")
    runs: dict[str, list[float]] = {"none": [], "all": []}
    for r in range(rounds):
        plane.traffic.shadow.apply([])
        runs["none"].append(await _cpu_per_request(plane, 5000, f"n{r}-"))
        plane.traffic.shadow.apply([ShadowConfig("linear", 1, 1.0, 10_000)])
        runs["all"].append(await _cpu_per_request(plane, 5000, f"a{r}-"))
    await plane.traffic.shadow.close()
    await plane.stop()
    none, every = (statistics.median(runs[m]) for m in ("none", "all"))
    print(f"in process, linear, 64 in flight, median of {rounds}: CPU per request {none:.1f} µs "
          f"with no shadow, {every:.1f} µs with every request mirrored: {every - none:.1f} µs per "
          f"shadow copy ({(every - none) * 0.1:.1f} µs per request at 10%)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the two modes (ABBA)")
    parser.add_argument("--no-pin", action="store_true", help="leave the server and wrk on any CPU")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.1, help="share mirrored")
    parser.add_argument("--in-process", action="store_true", help="CPU per shadow copy instead")
    args = parser.parse_args()
    if args.in_process:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            asyncio.run(_in_process(_repository(tmp / "repo"), tmp / "home", args.rounds + 1))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        runs, last_pair = _live(_repository(tmp / "repo"), tmp, args)
    setup = (f"linear, V2 JSON, {args.connections} connections, shadow fraction "
             f"{args.fraction:g}, median of {args.rounds} rounds")  # fmt: skip
    print(f"{'mode':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11}   ({setup})")
    for mode, points in runs.items():
        rps, p50, p99, cpu = (statistics.median(p[i] for p in points) for i in range(4))
        print(f"{mode:<8} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>11.1f}")
    pairs = list(zip(runs["shadow"], runs["none"], strict=True))
    p99_ratios = [on[2] / off[2] for on, off in pairs]
    rps_ratios = [on[0] / off[0] for on, off in pairs]
    low, high = median_interval(p99_ratios)
    cpu_extra = statistics.median(on[3] - off[3] for on, off in pairs)
    print("per round client p99 shadow / none:", " ".join(f"{r:.3f}" for r in p99_ratios))
    print(f"shadow / none: client p99 {statistics.median(p99_ratios):.3f} (median of the rounds' "
          f"paired ratios; 95% bootstrap interval {low:.3f}-{high:.3f}; goal <= 1.10), "
          f"throughput {statistics.median(rps_ratios):.3f}, server CPU per request "
          f"{cpu_extra:+.1f} µs")  # fmt: skip
    if last_pair is not None:
        print(_shadow_line(last_pair))
    return 0


if __name__ == "__main__":
    sys.exit(main())
