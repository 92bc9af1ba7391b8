"""Runtime benchmark: served samples/s against the framework called directly, per runtime.

Run ``.venv/bin/python bench/runtimes.py`` (about 1.5 minutes; ``--seconds`` shortens it).
See docs/runtimes.md for what it measures and the numbers of a run.

For a small MLP (256 -> 512 -> 512 -> 10, ReLU) saved as TorchScript, as a torch.export
program and as a TensorFlow SavedModel, and a 100-tree XGBoost classifier, in one process:

1. direct: the framework's own call (``module(x)`` under ``torch.inference_mode``, the
   SavedModel's ``serving_default``, ``Booster.inplace_predict``) on batches of 64 rows and of
   8 rows, in a loop on one thread;
2. served: the same file loaded by inferd (``build_app`` + data plane, in-process, no HTTP)
   with 64 concurrent asyncio callers sending 8-row requests, so the batcher merges them
   into batches of up to 64 rows; samples/s, mean rows per batch;
3. warm-up: a fresh version of each model is loaded and its first request sent the moment
   the load reports ready; its latency against the median of the next 200 (cold start
   hidden behind readiness: PASS when within 2x), as the median over 5 fresh versions
   (``--loads``) with the worst beside it. The same with warm-up switched off is the
   control (what warm-up hides), and requests sent after 1 s of idleness (thread pools
   asleep, caches cold) show what any request after a pause pays.

The ratio ``served / direct@64`` is the serving overhead at equal batch size (1.0 is free);
``served / direct@8`` is what a client sending 8-row requests gains from batching. Results
go to ``bench/results/runtimes-<timestamp>.json``; the exit code is 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# The model builders are shared with the tests (tests/fixtures/models.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.models import (
    build_mlp_tensorflow,
    build_mlp_torch_export,
    build_mlp_torchscript,
    build_xgboost_classifier,
    mlp_weights,
)

from inferd.api.app import build_app
from inferd.settings import Settings
from inferd.types import InferenceRequest

RESULTS = Path(__file__).resolve().parent / "results"
MLP = (256, 512, 512, 10)
XGB_FEATURES = 32
MAX_BATCH = 64
REQUEST_ROWS = 8
CALLERS = 64
MODELS = ("mlp_torchscript", "mlp_torch_export", "mlp_tensorflow", "xgboost_100")
YAML = """\
platform: {platform}
max_batch_size: {max_batch}
{io}warmup: {{batch_sizes: [1, {rows}, {max_batch}], iterations: 3}}
"""
MLP_IO = """\
inputs: [{name: x, datatype: FP32, shape: [-1, 256]}]
outputs: [{name: y, datatype: FP32, shape: [-1, 10]}]
"""


def build(root: Path) -> dict[str, Callable[[np.ndarray], Any]]:
    """Write the repository under ``root``; return each model's direct (in-process) call."""
    weights = mlp_weights(MLP, seed=0)
    builders = {
        "mlp_torchscript": ("torchscript", "model.pt", build_mlp_torchscript),
        "mlp_torch_export": ("torch_export", "model.pt2", build_mlp_torch_export),
        "mlp_tensorflow": ("tensorflow", "model.savedmodel", build_mlp_tensorflow),
    }
    paths = {
        name: (kind, build_mlp(root / name / "1" / file, weights))
        for name, (kind, file, build_mlp) in builders.items()
    }
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, XGB_FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    xgb_path = root / "xgboost_100/1/model.json"
    build_xgboost_classifier(xgb_path, x, y, trees=100, max_depth=6)
    paths["xgboost_100"] = ("xgboost", xgb_path)
    for name, (kind, _) in paths.items():
        io = MLP_IO if kind == "torchscript" else ""
        if kind == "torch_export":
            io = "outputs: [{name: y, datatype: FP32, shape: [-1, 10]}]\n"
        text = YAML.format(platform=kind, max_batch=MAX_BATCH, rows=REQUEST_ROWS, io=io)
        (root / name / "model.yaml").write_text(text)
    return _direct_calls({name: path for name, (_, path) in paths.items()})


def _direct_calls(paths: dict[str, Path]) -> dict[str, Callable[[np.ndarray], Any]]:
    import tensorflow as tf
    import torch
    import xgboost

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        script = torch.jit.load(str(paths["mlp_torchscript"])).eval()
    program = torch.export.load(str(paths["mlp_torch_export"])).module()
    serving = tf.saved_model.load(str(paths["mlp_tensorflow"])).signatures["serving_default"]
    booster = xgboost.Booster(model_file=str(paths["xgboost_100"]))

    def torch_call(module: Any) -> Callable[[np.ndarray], Any]:
        def call(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return call

    return {
        "mlp_torchscript": torch_call(script),
        "mlp_torch_export": torch_call(program),
        "mlp_tensorflow": lambda x: serving(x=tf.constant(x))["y"].numpy(),
        "xgboost_100": lambda x: booster.inplace_predict(x),
    }


def features(model: str) -> int:
    return XGB_FEATURES if model.startswith("xgboost") else MLP[0]


def direct_samples_per_s(call: Callable[[np.ndarray], Any], x: np.ndarray, seconds: float) -> float:
    for _ in range(30):  # TorchScript's profiling executor optimises after a few runs per shape
        call(x)
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 10:
        call(x)
        runs += 1
    return runs * x.shape[0] / elapsed


def _request(model: str) -> InferenceRequest:
    x = np.random.default_rng(1).standard_normal((REQUEST_ROWS, features(model)))
    return InferenceRequest(model, None, {"x": x.astype(np.float32)})


async def _latencies(plane: Any, model: str, count: int) -> list[float]:
    """``count`` requests one after another; seconds each."""
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        await plane.infer(_request(model), "bench")
        latencies.append(time.perf_counter() - start)
    return latencies


async def fresh_first(plane: Any, repo: Path, model: str, warmup: bool) -> tuple[float, float]:
    """Load a new version of ``model`` (with or without warm-up), send the first request the
    moment the load reports ready, then 200 back to back: (first ms, median ms of the rest).

    The process has served the framework before (its one-off imports and thread pools are
    up), so what the first request pays beyond the median is the version's own cold start:
    exactly what warm-up must hide behind readiness."""
    yaml = repo / model / "model.yaml"
    text = yaml.read_text()
    if not warmup:
        yaml.write_text(text.replace("warmup: {", "warmup: {enabled: false, "))
    try:
        await plane.unload_model(model)
        await plane.load_model(model)  # returns once the new version is READY
        latencies = await _latencies(plane, model, 201)
    finally:
        yaml.write_text(text)
    return latencies[0] * 1000, statistics.median(latencies[1:]) * 1000


async def first_requests(plane: Any, repo: Path, model: str, loads: int) -> dict[str, Any]:
    """Warm-up figures for ``model`` over ``loads`` fresh versions each way: the first
    request against the median of the next 200, with warm-up and without it (the control:
    what warm-up hides), and the median of 3 requests each sent after 1 s of idleness.

    One first request is one sample, and a noisy one on a shared machine, so each figure is
    the median over the loads; the worst ratio is reported beside it."""
    row: dict[str, Any] = {}
    for key, warmup in (("no_warmup_", False), ("", True)):
        samples = [await fresh_first(plane, repo, model, warmup) for _ in range(loads)]
        ratios = [first / median for first, median in samples]
        row[f"{key}first_ms"] = statistics.median(first for first, _ in samples)
        row[f"{key}median_ms"] = statistics.median(median for _, median in samples)
        row[f"{key}ratio"] = statistics.median(ratios)
        row[f"{key}worst_ratio"] = max(ratios)
        row[f"{key}samples"] = samples
    # A request after a pause wakes the frameworks' sleeping thread pools and finds the CPU
    # caches cold; every request after a quiet moment pays it, warm-up or not.
    idle = []
    for _ in range(3):
        await asyncio.sleep(1.0)
        idle.append((await _latencies(plane, model, 1))[0])
    row["after_idle_ms"] = statistics.median(idle) * 1000
    return row


async def served(plane: Any, model: str, seconds: float) -> tuple[float, float]:
    """(samples/s, mean rows per batch) with CALLERS concurrent callers of 8-row requests."""
    done = 0
    batches: list[int] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await plane.infer(_request(model), "bench")
            done += REQUEST_ROWS
            batches.append(response.batch.rows)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return done / (time.perf_counter() - start), statistics.fmean(batches)


async def measure_all(
    repo: Path, home: Path, calls: dict[str, Callable[[np.ndarray], Any]], args: Any
) -> list[dict[str, Any]]:
    """Warm-up checks first (fresh versions, before any load), then interleaved rounds."""
    app = build_app(Settings(home=home, model_repository=repo))
    problems = await app.dataplane.start()
    if problems:
        raise RuntimeError(f"models failed to load: {problems}")
    plane = app.dataplane
    try:
        rows = [{"model": m, **await first_requests(plane, repo, m, args.loads)} for m in MODELS]
        rng = np.random.default_rng(2)
        for row in rows:
            model = row["model"]
            print(f"measuring {model} ...", flush=True)
            batches = {n: rng.standard_normal((n, features(model))).astype(np.float32)
                       for n in (MAX_BATCH, REQUEST_ROWS)}  # fmt: skip
            # Best of N interleaved rounds: other processes and other frameworks' spinning
            # thread pools make single measurements on a small machine noisy.
            for _ in range(args.rounds):
                for n, x in batches.items():
                    speed = direct_samples_per_s(calls[model], x, args.seconds)
                    row[f"direct_{n}"] = max(row.get(f"direct_{n}", 0.0), speed)
                speed, rows_per_batch = await served(plane, model, args.seconds)
                if speed > row.get("served_samples_per_s", 0.0):
                    row["served_samples_per_s"], row["mean_batch_rows"] = speed, rows_per_batch
        return rows
    finally:
        await plane.stop()


def report(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'model':<18}{'direct@64':>11}{'direct@8':>10}{'served':>10}{'rows/batch':>11}"
        f"{'srv/d64':>9}{'srv/d8':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['model']:<18}{r['direct_64']:>11,.0f}{r['direct_8']:>10,.0f}"
            f"{r['served_samples_per_s']:>10,.0f}{r['mean_batch_rows']:>11.1f}"
            f"{r['served_samples_per_s'] / r['direct_64']:>9.2f}"
            f"{r['served_samples_per_s'] / r['direct_8']:>8.2f}"
        )
    lines.append("samples/s; srv/d64 = served / direct at 64 rows, srv/d8 = at 8 rows")
    lines.append("")
    header = (
        f"{'model':<18}{'no warm-up: first':>18}{'median':>8}{'ratio':>7}{'worst':>7}"
        f"{'warm-up: first':>16}{'median':>8}{'ratio':>7}{'worst':>7}{'idle':>7}{'<= 2x':>7}"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['model']:<18}{r['no_warmup_first_ms']:>18.2f}{r['no_warmup_median_ms']:>8.2f}"
            f"{r['no_warmup_ratio']:>6.1f}x{r['no_warmup_worst_ratio']:>6.1f}x"
            f"{r['first_ms']:>16.2f}{r['median_ms']:>8.2f}{r['ratio']:>6.1f}x"
            f"{r['worst_ratio']:>6.1f}x{r['after_idle_ms']:>7.2f}"
            f"{'PASS' if r['ratio'] <= 2 else 'FAIL':>7}"
        )
    lines.append("ms; first request of a fresh version sent the moment its load reports ready")
    lines.append("against the median of the 200 after it; medians over --loads fresh versions,")
    lines.append("worst: the highest ratio; idle: median request sent after 1 s of quiet")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement (default 1.5)")
    parser.add_argument("--rounds", type=int, default=3, help="best of N rounds (default 3)")
    parser.add_argument(
        "--loads", type=int, default=5, help="fresh versions per warm-up figure (default 5)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferd-bench-runtimes-") as tmp:
        repo, home = Path(tmp) / "repo", Path(tmp) / "home"
        home.mkdir()
        print("building models ...", flush=True)
        calls = build(repo)
        rows = asyncio.run(measure_all(repo, home, calls, args))
    print(report(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {
            "seconds": args.seconds, "rounds": args.rounds, "loads": args.loads,
            "callers": CALLERS, "request_rows": REQUEST_ROWS, "max_batch_size": MAX_BATCH,
            "mlp": MLP,
        },
        "rows": rows,
    }  # fmt: skip
    path = args.out / f"runtimes-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
