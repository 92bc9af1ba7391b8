"""Adaptive instances under a traffic ramp (low -> high -> low) against fixed counts, one run.

Run ``.venv/bin/python bench/adaptive_instances.py [--service-ms 20] [--low 25] [--high 150]
[--phases 8,12,12] [--max 4]``; writes ``bench/results/adaptive-instances-<timestamp>.json``.
The exit code is 0 whatever the numbers.

The model is a ``python`` model whose call sleeps ``--service-ms`` (one row per request,
``max_batch_size: 1``, so instances are the only lever). Why sleep: ``time.sleep`` releases
the GIL and uses no core, so capacity is exactly instances / service time, as for a model whose
calls wait on a GPU or on native code with ``intra_op_threads: 1`` and a core each, but without
the measurement depending on what else runs on this shared 2-core machine. Requests are an open
loop (Poisson arrivals at the phase's rate, seeded) through :class:`DataPlane.infer` in-process;
latency counts from the scheduled arrival, so a backlog shows. Requests wait at most
``queue_timeout_ms`` (2 s) in the queue, like clients that give up: those are the ``timeouts``.

Modes, each over the same ramp: ``fixed-min`` (``instances: 1``), ``fixed-max``
(``instances: --max``), ``adaptive`` (``{min: 1, max: --max}``, ``grow_after_s`` 1,
``shrink_after_s`` 5: shorter windows than the defaults so the run stays short). The scaler
ticks every 0.5 s as in the server; it is given a CPU share of ``--max`` because the sleeping
calls use no core (the share rule itself, ``max(1, cores // workers)``, is unit-tested).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _report import write_json
from prometheus_client import CollectorRegistry

from inferd.config import parse_model_config
from inferd.errors import InferdError
from inferd.monitoring.metrics import Metrics
from inferd.serving.dataplane import DataPlane
from inferd.serving.instances import InstanceScaler
from inferd.serving.manager import ModelManager, ModelVersion
from inferd.types import InferenceRequest

MODEL_PY = """
import time

from inferd.runtimes.python import PythonModel


class Sleeper(PythonModel):
    def infer(self, inputs):
        time.sleep(SERVICE_S)
        return {"y": inputs["x"]}
"""


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of one mode: what was offered, answered, and how fast."""

    mode: str
    phase: str
    offered_rps: float
    answered_rps: float
    timeouts: int
    other_errors: int
    p50_ms: float
    p99_ms: float
    mean_instances: float


def model_config(mode: str, top: int) -> dict[str, Any]:
    instances: Any = {"fixed-min": 1, "fixed-max": top}.get(mode)
    if instances is None:
        instances = {"min": 1, "max": top, "grow_after_s": 1.0, "shrink_after_s": 5.0}
    return {
        "platform": "python", "max_batch_size": 1, "instances": instances, "warmup": False,
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        "batching": {"queue_timeout_ms": 2000, "max_queue_size": 100_000},
    }  # fmt: skip


async def load(root: Path, mode: str, args: argparse.Namespace) -> tuple[DataPlane, ModelVersion]:
    folder = root / mode / "1"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(f"SERVICE_S = {args.service_ms / 1000}\n" + MODEL_PY)
    manager = ModelManager(Metrics(CollectorRegistry()))
    config = parse_model_config(model_config(mode, args.max), "bench", mode)
    version = await manager.load_version(config, 1, folder / "model.py")
    if version.state != "READY":
        raise SystemExit(f"{mode}: load failed: {version.reason}")
    return DataPlane(manager, manager._metrics), version


@dataclass(slots=True)
class Tally:
    """The answers to the requests that arrived in one phase (some come after it ends)."""

    latencies: list[float]
    timeouts: int = 0
    other: int = 0


async def one_phase(
    plane: DataPlane, version: ModelVersion, rate: float, seconds: float, rng: random.Random,
    pending: list[asyncio.Task[None]],
) -> tuple[Tally, float]:  # fmt: skip
    """Poisson arrivals at ``rate`` for ``seconds`` (their tasks appended to ``pending``, not
    awaited: traffic does not pause between phases); the tally and the mean instance count
    (sampled every 0.1 s)."""
    tally = Tally([])
    x = np.ones(1, dtype=np.float32)

    async def one(scheduled: float) -> None:
        request = InferenceRequest(model_name=version.name, model_version=None, inputs={"x": x})
        try:
            await plane.infer(request, "http")
        except InferdError as err:
            if err.http_status == 504:
                tally.timeouts += 1
            else:
                tally.other += 1
            return
        tally.latencies.append(time.perf_counter() - scheduled)

    counts: list[int] = []
    start = time.perf_counter()
    due = start
    next_count = start
    while due < start + seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if due >= next_count and version.batcher is not None:
            counts.append(version.batcher.instances)
            next_count += 0.1
        pending.append(asyncio.ensure_future(one(due)))
        due += rng.expovariate(rate)
    return tally, statistics.fmean(counts) if counts else 0.0


async def run_mode(mode: str, root: Path, args: argparse.Namespace) -> list[Phase]:
    plane, version = await load(root, mode, args)
    scaler_task = None
    if mode == "adaptive":
        scaler = InstanceScaler(plane.manager, plane.metrics, cores=args.max)
        scaler_task = asyncio.ensure_future(scaler.run())
    rng = random.Random(7)  # the same arrivals for every mode
    names = ("low", "high", "low again")
    rates = (args.low, args.high, args.low)
    pending: list[asyncio.Task[None]] = []
    measured = []
    for name, rate, seconds in zip(names, rates, args.phases, strict=True):
        tally, instances = await one_phase(plane, version, rate, seconds, rng, pending)
        measured.append((name, rate, seconds, tally, instances))
    await asyncio.gather(*pending)  # the last answers (or queue timeouts)
    if scaler_task is not None:
        scaler_task.cancel()
    await plane.manager.close()
    out = []
    for name, rate, seconds, tally, instances in measured:
        ordered = sorted(tally.latencies) or [float("nan")]
        out.append(Phase(
            mode, name, rate, len(tally.latencies) / seconds, tally.timeouts, tally.other,
            ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000,
            instances,
        ))  # fmt: skip
    return out


def table(rows: list[Phase]) -> str:
    head = "| mode | phase | offered req/s | answered req/s | timeouts | p50 ms | p99 ms | inst. |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.mode} | {r.phase} | {r.offered_rps:.0f} | {r.answered_rps:.1f} | "
            f"{r.timeouts + r.other_errors} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
            f"{r.mean_instances:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--low", type=float, default=25.0, help="requests/s, low phases")
    parser.add_argument("--high", type=float, default=150.0, help="requests/s, high phase")
    parser.add_argument("--phases", default="8,12,12", help="seconds: low,high,low")
    parser.add_argument("--max", type=int, default=4, help="fixed-max count, adaptive max")
    args = parser.parse_args()
    args.phases = tuple(float(s) for s in args.phases.split(","))
    load_before = os.getloadavg()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[Phase] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("fixed-min", "fixed-max", "adaptive"):
            rows += asyncio.run(run_mode(mode, Path(tmp), args))
    load_after = os.getloadavg()
    print(table(rows))
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    path = Path(__file__).parent / "results" / f"adaptive-instances-{stamp}.json"
    write_json(path, settings=vars(args), load_before=load_before, load_after=load_after,
               phases=rows)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
