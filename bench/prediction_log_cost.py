"""What the prediction log costs on the request path: ``mlp`` at c=64 through the data plane,
log off vs 1% vs 100% sampling, side by side in one run.

Run ``.venv/bin/python bench/prediction_log_cost.py [--duration 2] [--rounds 6]``.

The data plane is driven in-process (no HTTP: the transport would add the same cost to every
mode and shrink the ratios), with the built-in ``mlp`` (ONNX, 256 -> 10, one row per request)
and dynamic batching as served. The log writes real Parquet files to a temporary folder with a
1 s flush (the server flushes every 30 s or every 5,000 requests), so the writer thread's work
falls inside the measured window in every mode and competes with serving as it would in a
server. Modes are measured back to back in each round, in an order that rotates, so drift in
the machine's load hits all alike; the ratio is given per round and as the median of rounds:

- ``off``: no prediction log (the data plane tests one attribute);
- ``1%``: ``--prediction-log-rate 0.01``;
- ``100%``: every request logged.

The micro part times ``offer`` alone: a request not sampled, and one sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _inprocess import drive, mlp_plane
from prometheus_client import CollectorRegistry

from inferd.config import ModelConfig
from inferd.monitoring.metrics import Metrics
from inferd.monitoring.prediction_log import PredictionLog
from inferd.monitoring.prediction_log_writer import ParquetSink
from inferd.serving.examples import ensure_examples
from inferd.types import InferenceRequest, InferenceResponse

MODES: dict[str, float | None] = {"off": None, "1%": 0.01, "100%": 1.0}


async def _measure(
    rate: float | None, repo: Path, folder: Path, args: argparse.Namespace
) -> tuple[float, float, int]:
    """Requests/s, CPU µs per request and requests written, for one mode."""
    metrics = Metrics(CollectorRegistry())
    plane = await mlp_plane(repo, metrics)
    await plane.start()
    log = None
    if rate is not None:
        log = PredictionLog(ParquetSink(str(folder)), rate, CollectorRegistry(), flush_s=1.0)
        plane.prediction_log = log
    await drive(plane, args.concurrency, 1.0)  # warm-up
    task = asyncio.create_task(log.run()) if log is not None else None
    cpu, wall = time.process_time(), time.perf_counter()
    count = await drive(plane, args.concurrency, args.duration)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if log is not None and task is not None:
        task.cancel()
        await log.close()
    await plane.manager.close()
    written = log.written if log is not None else 0
    return count / wall, cpu / max(count, 1) * 1e6, written


def _micro(n: int) -> dict[str, float]:
    """µs per ``offer`` call: not sampled (rate 0) and sampled (rate 1, queue emptied)."""
    x = np.zeros((1, 256), np.float32)
    request = InferenceRequest("mlp", "1", {"x": x})
    response = InferenceResponse("mlp", "1", {"y": np.zeros((1, 10), np.float32)})
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, rate in (("not sampled", 0.0), ("sampled", 1.0)):
            log = PredictionLog(ParquetSink(folder), rate, CollectorRegistry(), max_pending=n)
            config = ModelConfig(name="mlp", platform="onnx")
            best = float("inf")
            for _ in range(5):
                log._pending.clear()
                start = time.perf_counter()
                for _ in range(n):
                    log.offer(config, request, response)
                best = min(best, time.perf_counter() - start)
            out[name] = best / n * 1e6
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    runs: dict[str, list[tuple[float, float, int]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        repo = ensure_examples(Path(tmp) / "repo")
        order = list(MODES)
        for round_ in range(args.rounds):
            for mode in order:
                folder = Path(tmp) / f"log-{mode.strip('%')}-{round_}"
                runs[mode].append(asyncio.run(_measure(MODES[mode], repo, folder, args)))
            order = order[1:] + order[:1]  # each mode takes each place in the order
    print(f"mlp, c={args.concurrency}, {args.rounds} rounds x {args.duration:g} s, in-process")
    print(f"{'mode':<6} {'req/s (median)':>15} {'CPU µs/req':>11} {'written':>8}   rounds")
    rps = {m: statistics.median(r[0] for r in rs) for m, rs in runs.items()}
    for mode, results in runs.items():
        cpu = statistics.median(r[1] for r in results)
        written = sum(r[2] for r in results)
        each = ", ".join(f"{r[0]:.0f}" for r in results)
        print(f"{mode:<6} {rps[mode]:>15.0f} {cpu:>11.1f} {written:>8}   {each}")
    for mode in ("1%", "100%"):
        ratios = [on[0] / off[0] for on, off in zip(runs[mode], runs["off"], strict=True)]
        each = ", ".join(f"{r:.3f}" for r in ratios)
        print(f"throughput {mode}/off: median of rounds {statistics.median(ratios):.3f} "
              f"({each}); of medians {rps[mode] / rps['off']:.3f}")  # fmt: skip
    micro = _micro(50_000)
    print("µs per offer: " + ", ".join(f"{k} {v:.2f}" for k, v in micro.items()))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
