"""What the metrics cost on the request path: ``mlp`` at c=64 through the data plane, metrics
on vs off in one run, and the per-request cost of each metrics call.

Run ``.venv/bin/python bench/metrics_cost.py [--duration 3] [--rounds 3] [--concurrency 64]``.

There is no switch that turns metrics off in a server, so the end-to-end part drives
:class:`inferd.serving.dataplane.DataPlane` in-process (no HTTP: the transport would add the
same cost to every mode and shrink the ratios), with the built-in ``mlp`` (ONNX, 256 -> 10,
one row per request) and dynamic batching as served. Modes, alternated per round so drift in
the machine's load hits all alike:

- ``off``: a metrics object whose every observation is a no-op;
- ``before``: the metrics as they were before in-flight counting (request_started/ended no-ops);
- ``on``: every metric, as served.

The micro part times each call on the request path alone (single process, and with
``PROMETHEUS_MULTIPROC_DIR`` set as with ``--workers N``, in a subprocess because
prometheus_client picks its value store at import).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _inprocess import drive, mlp_plane

from inferd.monitoring.metrics import Metrics
from inferd.serving.examples import ensure_examples


class OffMetrics(Metrics):
    """Every observation on the request path is a no-op."""

    def observe_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def observe_batch(self, *args: Any, **kwargs: Any) -> None:
        pass

    def request_started(self, model: str, version: str) -> None:
        pass

    def request_ended(self, model: str, version: str) -> None:
        pass


class BeforeMetrics(Metrics):
    """The metrics before in-flight counting."""

    def request_started(self, model: str, version: str) -> None:
        pass

    def request_ended(self, model: str, version: str) -> None:
        pass


MODES: dict[str, type[Metrics]] = {"off": OffMetrics, "before": BeforeMetrics, "on": Metrics}


async def _measure(mode: str, repo: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Requests per second and CPU µs per request of one mode (fresh manager and metrics)."""
    metrics = MODES[mode]()
    plane = await mlp_plane(repo, metrics)
    await plane.start()  # no model control: serves what the manager holds
    await drive(plane, args.concurrency, 1.0)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    count = await drive(plane, args.concurrency, args.duration)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await plane.manager.close()
    return count / wall, cpu / max(count, 1) * 1e6


def _micro(n: int) -> dict[str, float]:
    """µs per call of each request-path metrics call, in this process's value store."""
    metrics = Metrics()
    metrics.prepare("mlp", "1", ("http",))
    out: dict[str, float] = {}

    async def loop() -> None:
        def observe() -> None:
            metrics.observe_request("mlp", "1", "http", 200, 0.003, 0.001)

        def in_flight() -> None:
            metrics.request_started("mlp", "1")
            metrics.request_ended("mlp", "1")

        calls = {"observe_request": observe, "request_started+ended": in_flight}
        for name, call in calls.items():
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for i in range(n):
                    call()
                    if i % 32 == 31:  # a loop turn every 32 requests, as under load
                        await asyncio.sleep(0)
                best = min(best, time.perf_counter() - start)
            out[name] = best / n * 1e6

    asyncio.run(loop())
    return out


def _micro_in_subprocess(multiprocess: bool, n: int) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as folder:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = folder
        out = subprocess.run(
            [sys.executable, __file__, "--micro-only", str(n)], env=env, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--micro-only", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.micro_only:
        print(json.dumps(_micro(args.micro_only)))
        return 0
    print(f"load average before: {os.getloadavg()}")
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        repo = ensure_examples(Path(folder) / "repo")
        for _ in range(args.rounds):
            for mode in MODES:
                runs[mode].append(asyncio.run(_measure(mode, repo, args)))
    print(f"mlp, c={args.concurrency}, {args.rounds} rounds x {args.duration:g} s, in-process")
    print(f"{'mode':<8} {'req/s (median)':>15} {'CPU µs/req':>11}   rounds")
    rps = {m: statistics.median(r[0] for r in rs) for m, rs in runs.items()}
    for mode, results in runs.items():
        cpu = statistics.median(r[1] for r in results)
        each = ", ".join(f"{r[0]:.0f}" for r in results)
        print(f"{mode:<8} {rps[mode]:>15.0f} {cpu:>11.1f}   {each}")
    print(f"on/off throughput: {rps['on'] / rps['off']:.3f}; "
          f"on/before: {rps['on'] / rps['before']:.3f}")  # fmt: skip
    # Paired per round (the modes of one round ran back to back, under much the same load).
    paired = [on[0] / off[0] for on, off in zip(runs["on"], runs["off"], strict=True)]
    cpu_added = [on[1] - off[1] for on, off in zip(runs["on"], runs["off"], strict=True)]
    print(f"per round on/off: {', '.join(f'{r:.3f}' for r in paired)} "
          f"(median {statistics.median(paired):.3f}); CPU µs/req added, median "
          f"{statistics.median(cpu_added):.1f}")  # fmt: skip
    for multiprocess in (False, True):
        micro = _micro_in_subprocess(multiprocess, 20_000)
        label = "multiprocess files" if multiprocess else "single process"
        print(f"µs per call ({label}): " + ", ".join(f"{k} {v:.2f}" for k, v in micro.items()))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
