"""What a canary rollout costs per request: in-process data plane, three modes, ratios in one run.

Run ``.venv/bin/python bench/rollouts.py [--requests 30000] [--concurrency 64] [--rounds 3]
[--percent 5]``.

The repository holds ``linear`` twice (versions 1 and 2, the same ONNX file); version 1 is
production. Each mode builds a fresh app (as ``inferd serve`` does) and runs ``--requests``
unversioned requests through ``DataPlane.infer`` from ``--concurrency`` tasks, measuring
requests/s and process CPU per request:

- ``none``: no rollout; every request on version 1.
- ``split``: no rollout; the caller names version 2 on ``--percent`` % of the requests (drawn
  at random): the cost of serving two versions at once (a second batcher and worker thread,
  small batches on the second version), without any routing.
- ``rollout``: a rollout of version 2 held at ``--percent`` %: the same split made by the
  traffic policy (a draw per request, per-step tallies of latency, 5xx and the answer's mean,
  the response parameters).

``rollout - split`` is what the rollout itself adds. The HTTP layer and load generator are
left out on purpose: on a shared 2-core machine their noise (a run's throughput can halve
between identical rounds) is larger than the effect measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from inferd.api.app import build_app
from inferd.serving.dataplane import DataPlane
from inferd.serving.examples import ensure_examples
from inferd.settings import Settings
from inferd.traffic.rollout_controller import RolloutController
from inferd.types import InferenceRequest

MODES = ("none", "split", "rollout")
X = np.array([1.5], dtype=np.float32)


def _two_versions(tmp: Path) -> Path:
    repo = ensure_examples(tmp / "repo")
    shutil.copytree(repo / "linear" / "1", repo / "linear" / "2")
    config = repo / "linear" / "model.yaml"
    config.write_text(config.read_text() + "version_policy: all\n")
    return repo


async def _ready(dp: DataPlane, version: str) -> None:
    for _ in range(400):  # version 2 loads on demand once version 1 is production
        try:
            await dp.infer(InferenceRequest("linear", version, {"x": X}, id="w"), "bench")
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"linear version {version} never became ready")


async def _measure(
    mode: str, repo: Path, home: Path, args: argparse.Namespace
) -> tuple[float, float]:
    app = build_app(Settings(home=home, model_repository=repo))
    dp = app.dataplane
    await dp.start()
    if app.management is None or app.management.rollouts is None:
        raise RuntimeError("the app serves no /v1 management routes")
    await app.management.management.promote("linear", 1)
    if mode == "rollout":
        service = app.management.rollouts.service
        steps = [{"percent": args.percent, "min_duration_s": 1e9}, {"percent": 100}]
        await service.create({"model": "linear", "candidate": 2, "steps": steps})
        await RolloutController(service).tick()
        await asyncio.to_thread(dp.traffic.refresh)
    await _ready(dp, "2")
    rng = random.Random(1)
    share = args.percent / 100.0

    async def client(count: int) -> None:
        for _ in range(count):
            named = "2" if mode == "split" and rng.random() < share else None
            await dp.infer(InferenceRequest("linear", named, {"x": X}, id="r"), "bench")

    await asyncio.gather(*(client(50) for _ in range(args.concurrency)))  # warm-up
    per_task = args.requests // args.concurrency
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(per_task) for _ in range(args.concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await dp.stop()
    total = per_task * args.concurrency
    return total / wall, cpu / total * 1e6


async def _main(args: argparse.Namespace) -> int:
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        repo = _two_versions(tmp)
        for _ in range(args.rounds):
            for mode in MODES:
                home = Path(tempfile.mkdtemp(prefix=f"home-{mode}-", dir=tmp))
                runs[mode].append(await _measure(mode, repo, home, args))
    setup = (f"linear in-process, {args.concurrency} tasks, {args.percent:g} % to version 2, "
             f"median of {args.rounds}")  # fmt: skip
    print(f"{'mode':<8} {'req/s':>9} {'cpu µs/req':>11}   ({setup})")
    medians = {}
    for mode, points in runs.items():
        medians[mode] = tuple(statistics.median(p[i] for p in points) for i in range(2))
        print(f"{mode:<8} {medians[mode][0]:>9.0f} {medians[mode][1]:>11.1f}")
    for a, b in (("rollout", "split"), ("rollout", "none"), ("split", "none")):
        ratio = medians[a][0] / medians[b][0]
        extra = medians[a][1] - medians[b][1]
        print(f"{a} vs {b}: throughput {ratio:.3f}, CPU {extra:+.1f} µs per request")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--percent", type=float, default=5.0, help="share of version 2, %%")
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
