"""What the prediction cache buys and costs: ``mlp`` at c=64 through the data plane, cache
on vs off side by side in one run, on two workloads.

Run ``.venv/bin/python bench/cache.py [--duration 2] [--rounds 4] [--distinct 32]``.

The data plane is driven in-process (the HTTP transport would add the same cost to every mode
and shrink the ratios), with the built-in ``mlp`` (ONNX, 256 -> 10, one row per request) and
dynamic batching as served. Workloads:

- ``repeated``: every request is one of ``--distinct`` inputs, in turn (a hot set);
- ``unique``: every request a fresh random input, so with the cache on every request is a
  miss and pays the key digest, the put and (once full) LRU eviction: the cost of a miss.

Modes are measured back to back in each round, in an order that rotates, so drift in the
machine's load hits all alike; ratios are given per round and as the median of rounds.
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
from prometheus_client import CollectorRegistry

from inferd.config import load_model_config
from inferd.monitoring.metrics import Metrics
from inferd.resilience.config import CacheConfig
from inferd.resilience.layer import Resilience
from inferd.serving.dataplane import DataPlane
from inferd.serving.examples import ensure_examples
from inferd.serving.manager import ModelManager
from inferd.types import InferenceRequest

MODES = [("repeated", False), ("repeated", True), ("unique", False), ("unique", True)]


async def _drive(plane: DataPlane, workload: str, args: argparse.Namespace, seconds: float) -> int:
    rng = np.random.default_rng(0)
    hot = [rng.random((1, 256), dtype=np.float32) for _ in range(args.distinct)]
    stop = time.perf_counter() + seconds
    done = 0

    async def caller(offset: int) -> None:
        nonlocal done
        turn = offset
        while time.perf_counter() < stop:
            if workload == "repeated":
                x = hot[turn % len(hot)]
                turn += 1
            else:
                x = rng.random((1, 256), dtype=np.float32)
            await plane.infer(InferenceRequest("mlp", None, {"x": x}), "http")
            done += 1

    await asyncio.gather(*(caller(i) for i in range(args.concurrency)))
    return done


async def _measure(workload: str, cached: bool, repo: Path, args: argparse.Namespace) -> tuple[
    float, float
]:  # fmt: skip
    """Requests/s and CPU µs per request, for one mode."""
    metrics = Metrics(CollectorRegistry())
    manager = ModelManager(metrics)
    config = load_model_config(repo / "mlp" / "model.yaml", "mlp")
    if cached:
        cache = CacheConfig(enabled=True, max_bytes=args.max_bytes, ttl_s=600)
        config = config.model_copy(update={"cache": cache})
    await manager.load_version(config, 1, repo / "mlp" / "1" / "model.onnx")
    plane = DataPlane(manager, metrics)
    plane.resilience = Resilience(CollectorRegistry())
    await plane.start()
    await _drive(plane, workload, args, 1.0)  # warm-up (and, cached, a full cache)
    cpu, wall = time.process_time(), time.perf_counter()
    count = await _drive(plane, workload, args, args.duration)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await manager.close()
    return count / wall, cpu / max(count, 1) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--distinct", type=int, default=32, help="inputs in the hot set")
    parser.add_argument("--max-bytes", type=int, default=4 << 20, help="cache bound")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    runs: dict[tuple[str, bool], list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        repo = ensure_examples(Path(tmp) / "repo")
        order = list(MODES)
        for _ in range(args.rounds):
            for workload, cached in order:
                result = asyncio.run(_measure(workload, cached, repo, args))
                runs[(workload, cached)].append(result)
            order = order[1:] + order[:1]
    print(f"mlp, c={args.concurrency}, {args.rounds} rounds x {args.duration:g} s, in-process, "
          f"hot set {args.distinct}, cache bound {args.max_bytes} B")  # fmt: skip
    print(f"{'workload':<9} {'cache':<5} {'req/s (median)':>15} {'CPU µs/req':>11}   rounds")
    for (workload, cached), results in runs.items():
        rps = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        each = ", ".join(f"{r[0]:.0f}" for r in results)
        print(f"{workload:<9} {'on' if cached else 'off':<5} {rps:>15.0f} {cpu:>11.1f}   {each}")
    for workload in ("repeated", "unique"):
        on, off = runs[(workload, True)], runs[(workload, False)]
        ratios = [a[0] / b[0] for a, b in zip(on, off, strict=True)]
        cpu = statistics.median(a[1] - b[1] for a, b in zip(on, off, strict=True))
        each = ", ".join(f"{r:.3f}" for r in ratios)
        print(f"{workload}: throughput on/off median {statistics.median(ratios):.3f} ({each}); "
              f"CPU per request on-off {cpu:+.1f} µs")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
