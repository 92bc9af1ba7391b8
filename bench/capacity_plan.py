"""The planner's predictions against measured runs on this machine.

Run ``.venv/bin/python bench/capacity_plan.py`` (about 3 minutes). It starts two
``inferd serve`` processes (replicas A and B, each its own port, batcher queues, metrics and
SQLite registry) and checks the planner's two predictions:

- one replica at a concurrency the curve did not measure (``--check``): the throughput
  interpolated between the neighbouring measured levels (``throughput_at``);
- two replicas (A and B, the closed-loop clients alternating between them as a Service
  spreads connections) at a total concurrency C (``--pairs``): ``2 x throughput_at(C / 2)``.

The default model, ``paced``, is a python model whose runtime call takes 20 ms for a batch of
up to 4 rows (a device-bound model: its replica's capacity is set by its own accelerator, not
by the host's CPU); ``--model mlp`` runs the built-in ONNX MLP, which is bound by the CPU the
replicas and the load generator share.

Other work on a shared machine moves throughput by tens of percent within seconds, so each
check's measurements run back to back, in random order, in every one of ``--rounds``
rounds: the curve points a prediction is made from (replica A alone, closed loop,
``inferd.plan.measure``), then the run it predicts. The error is the median over the rounds
of measured / predicted - 1; the acceptance is within 20%. Replica A's full curve
(``--levels``) is measured at the end of each round and printed as the median.

**Why separate processes for replicas.** A Kubernetes replica is a pod running one
``inferd serve``: its own listener, batcher queues, readiness and /metrics. ``--workers N``
puts N processes behind one port and one merged /metrics inside one pod: a bigger replica,
not more of them. The curve is per replica, so replicas here are separate servers.

**What one machine cannot show.** The replicas and the load generator share its cores. A
prediction of 2 x one replica's throughput assumes each replica has the resources it was
measured with: true of ``paced`` (its 20 ms are its own), not of ``mlp`` once the replicas
together need more CPU than the machine has left; ``--model mlp`` shows that shortfall.
Note ``uptime`` beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server

from inferd.client import AsyncClient
from inferd.plan.measure import LoadOptions, example_inputs, measure_step
from inferd.plan.model import Curve, Point, throughput_at
from inferd.serving.examples import ensure_examples

TOLERANCE = 0.20
PACED_PY = """\
import time

from inferd.runtimes.python import PythonModel


class Paced(PythonModel):
    def infer(self, inputs):
        time.sleep(0.02)  # one batch of up to 4 rows: a device's time, not the host's CPU
        return {"y": inputs["x"] * 2 + 1}
"""
PACED_YAML = """\
platform: python
max_batch_size: 4
batching: {max_queue_delay_ms: 1}
inputs: [{name: x, datatype: FP32, shape: [-1]}]
outputs: [{name: y, datatype: FP32, shape: [-1]}]
warmup: false
"""


def make_repo(root: Path) -> Path:
    """The built-in examples plus ``paced``."""
    repo = ensure_examples(root)
    (repo / "paced" / "1").mkdir(parents=True, exist_ok=True)
    (repo / "paced" / "1" / "model.py").write_text(PACED_PY)
    (repo / "paced" / "model.yaml").write_text(PACED_YAML)
    return repo


def _levels(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _neighbours(levels: list[int], c: float) -> list[int]:
    """The measured levels a prediction at concurrency ``c`` interpolates between."""
    if c in levels:
        return [int(c)]
    below = max(level for level in levels if level < c)
    return [below, min(level for level in levels if level > c)]


async def _round(urls: list[str], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One round: every check with the curve points it is predicted from, each check's
    measurements back to back in random order (background load hits both alike)."""
    opts = LoadOptions(urls[0], args.model, duration_s=args.duration, warmup_s=args.warmup)
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    a, b = AsyncClient(urls[0], timeout=60), AsyncClient(urls[1], timeout=60)
    async with a, b, httpx.AsyncClient(base_url=urls[0], timeout=10) as http:
        inputs = example_inputs(await a.model_metadata(args.model), rows=1)
        checks = [(1, c) for c in args.check] + [(2, c) for c in args.pairs]
        for replicas, c in checks:
            steps = [(1, level) for level in _neighbours(args.levels, c / replicas)]
            steps.append((replicas, c))
            rng.shuffle(steps)
            got = {}
            for n, level in steps:
                clients = [a] if n == 1 else [a, b]
                got[(n, level)] = await measure_step(clients, None, opts, inputs, level)
            points = tuple(got[(1, level)] for level in _neighbours(args.levels, c / replicas))
            local = Curve(args.model, points) if len(points) > 1 else None
            x = points[0].throughput_rps if local is None else throughput_at(local, c / replicas)
            out[f"{replicas}x{c}"] = (replicas * x, got[(replicas, c)].throughput_rps)
        out["curve"] = [await measure_step([a], http, opts, inputs, c) for c in args.levels]
    return out


def _median_curve(model: str, rounds: list[dict[str, Any]]) -> Curve:
    points = []
    for i, first in enumerate(rounds[0]["curve"]):
        at = [r["curve"][i] for r in rounds]
        p95 = statistics.median(p.p95_ms for p in at)
        points.append(Point(
            first.concurrency,
            statistics.median(p.throughput_rps for p in at),
            min(statistics.median(p.p50_ms for p in at), p95), p95,
            max(statistics.median(p.p99_ms for p in at), p95),
            statistics.median(p.queue_depth for p in at),
        ))  # fmt: skip
    return Curve(model, tuple(points))


def _checks(rounds: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for replicas, levels in ((1, args.check), (2, args.pairs)):
        for c in levels:
            pairs = [r[f"{replicas}x{c}"] for r in rounds]
            ratio = statistics.median(measured / predicted for predicted, measured in pairs)
            rows.append({
                "replicas": replicas, "concurrency": c,
                "predicted_rps": round(statistics.median(p for p, _ in pairs), 1),
                "measured_rps": round(statistics.median(m for _, m in pairs), 1),
                "error": round(ratio - 1, 3), "within_20pct": abs(ratio - 1) <= TOLERANCE,
                "per_round": [[round(p, 1), round(m, 1)] for p, m in pairs],
            })  # fmt: skip
    return rows


def _print(curve: Curve, rows: list[dict[str, Any]], load: tuple[float, ...]) -> None:
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    print("median curve of replica A:")
    for p in curve.points:
        print(
            f"  concurrency {p.concurrency:>3}: {p.throughput_rps:8.1f} req/s  "
            f"p50 {p.p50_ms:6.2f}  p99 {p.p99_ms:7.2f} ms"
        )
    print("replicas  concurrency  predicted  measured   error  within 20%  (medians over rounds;")
    print("                                              error: median of measured/predicted - 1)")
    for r in rows:
        print(
            f"{r['replicas']:>8} {r['concurrency']:>12} {r['predicted_rps']:>10.1f} "
            f"{r['measured_rps']:>9.1f} {r['error']:>+7.1%}  {r['within_20pct']!s:>10}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="paced", help="paced (default) or mlp")
    parser.add_argument("--levels", type=_levels, default=[1, 2, 4, 8, 16])
    parser.add_argument("--check", type=_levels, default=[3, 6, 12])
    parser.add_argument("--pairs", type=_levels, default=[2, 4, 8, 16])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per step")
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferd-plan-") as tmp:
        repo = make_repo(Path(tmp) / "repo")
        with Server(repo, 1, Path(tmp) / "a") as a, Server(repo, 1, Path(tmp) / "b") as b:
            rounds = [
                asyncio.run(_round([a.base_url, b.base_url], args, seed))
                for seed in range(args.rounds)
            ]
    curve = _median_curve(args.model, rounds)
    rows = _checks(rounds, args)
    load = os.getloadavg()
    _print(curve, rows, load)
    out = args.out or Path(__file__).parent / "results" / time.strftime(
        "capacity-%Y%m%d-%H%M%S.json"
    )
    out.write_text(
        json.dumps(
            {
                "load_average": load,
                "curve": curve.to_dict(),
                "checks": rows,
                "args": {k: v for k, v in vars(args).items() if k != "out"},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0 if all(r["within_20pct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
