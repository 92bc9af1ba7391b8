"""What drift sampling costs on the request path: ``mlp`` at c=64 through the data plane, drift
off vs 1% vs 100% sampling in one run, and the per-request cost of the sampler's calls.

Run ``.venv/bin/python bench/drift_cost.py [--duration 3] [--rounds 3] [--concurrency 64]``.

Like ``bench/metrics_cost.py`` this drives :class:`inferd.serving.dataplane.DataPlane`
in-process with the built-in ``mlp`` (ONNX, 256 -> 10, one row per request, dynamic batching as
served), so the transport's cost does not dilute the ratios. Modes, alternated per round:

- ``off``: no model watched (the request path tests an empty dict);
- ``1%``: ``mlp`` watched at the default rate (a dict lookup and a ``random()`` per request,
  the rows of one request in a hundred copied into the reservoir);
- ``100%``: every request's rows copied (266 features: 256 inputs, 10 outputs).

Samples are not written anywhere (no store): the flush runs every 5 s off the request path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _inprocess import drive, mlp_plane

from inferd.monitoring.drift_sampler import DriftSampler
from inferd.monitoring.metrics import Metrics
from inferd.serving.examples import ensure_examples

MODES = {"off": None, "1%": 0.01, "100%": 1.0}


async def _measure(mode: str, repo: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """Requests per second, CPU µs per request and requests sampled of one mode."""
    metrics = Metrics()
    plane = await mlp_plane(repo, metrics)
    sampler = DriftSampler(None, seed=0)
    rate = MODES[mode]
    sampler.rates = {} if rate is None else {"mlp": rate}
    plane.drift = sampler
    await plane.start()
    await drive(plane, args.concurrency, 1.0)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    count = await drive(plane, args.concurrency, args.duration)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await plane.manager.close()
    return count / wall, cpu / max(count, 1) * 1e6, sampler.sampled


def _micro(n: int) -> dict[str, float]:
    """µs per call: the decision (unwatched, watched at 1%) and one mlp request's copy."""
    sampler = DriftSampler(None, seed=0)
    x = np.random.default_rng(0).random((1, 256), dtype=np.float32)
    y = np.zeros((1, 10), dtype=np.float32)

    def best(call: Callable[[], object], count: int) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(count):
                call()
            times.append(time.perf_counter() - start)
        return min(times) / count * 1e6

    out = {"wants (unwatched)": best(lambda: sampler.wants("mlp"), n)}
    sampler.rates = {"mlp": 0.01}
    out["wants (1%)"] = best(lambda: sampler.wants("mlp"), n)
    out["take (mlp request)"] = best(lambda: sampler.take("mlp", "1", {"x": x}, {"y": y}), n // 20)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    runs: dict[str, list[tuple[float, float, int]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        repo = ensure_examples(Path(folder) / "repo")
        for _ in range(args.rounds):
            for mode in MODES:
                runs[mode].append(asyncio.run(_measure(mode, repo, args)))
    print(f"mlp, c={args.concurrency}, {args.rounds} rounds x {args.duration:g} s, in-process")
    print(f"{'mode':<6} {'req/s (median)':>15} {'CPU µs/req':>11} {'sampled':>8}   rounds")
    rps = {m: statistics.median(r[0] for r in rs) for m, rs in runs.items()}
    for mode, results in runs.items():
        cpu = statistics.median(r[1] for r in results)
        sampled = statistics.median(r[2] for r in results)
        each = ", ".join(f"{r[0]:.0f}" for r in results)
        print(f"{mode:<6} {rps[mode]:>15.0f} {cpu:>11.1f} {sampled:>8.0f}   {each}")
    print(f"1%/off throughput: {rps['1%'] / rps['off']:.3f}; "
          f"100%/off: {rps['100%'] / rps['off']:.3f}")  # fmt: skip
    micro = _micro(200_000)
    print("µs per call: " + ", ".join(f"{k} {v:.2f}" for k, v in micro.items()))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
