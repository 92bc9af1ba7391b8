"""What declared preprocessing costs: the compiled transform against per-row Python, and a
request with preprocessing against the same request without it, in one run.

Run ``.venv/bin/python bench/preprocessing.py [--duration 2] [--rounds 3] [--concurrency 16]``.

1. Transform only, on the ``credit`` block of ``tests/fixtures/preprocess.py`` (impute,
   clip, standard scale, ``log1p`` expression, one-hot of two, bucketize: 3 raw columns ->
   5 features), at 1, 64 and 10,000 rows:

   - ``compiled``: :meth:`Preprocessor.apply` on numpy columns (V2 and ``input_data``);
   - ``compiled+rows``: the ``instances`` rows turned into columns first, then ``apply``;
   - ``per-row python``: the same rules written as a plain function called once per row on
     the row dicts, as a hand-written handler would (the baseline).

2. Requests through :class:`DataPlane` in-process (no HTTP), one row each, ``c`` callers:
   ``credit`` (an echo model behind the block, raw columns in) against ``plain`` (the same
   echo, its 5 features sent ready-made). Both models are the same Python echo, so the
   difference is the preprocessing and its checks.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.preprocess import CREDIT_PY, CREDIT_YAML, write_credit_model

from inferd.config import load_model_config
from inferd.monitoring.metrics import Metrics
from inferd.preprocess import Preprocessor, compile_preprocessing
from inferd.protocol._instances import instances_to_inputs
from inferd.serving.dataplane import DataPlane
from inferd.serving.manager import ModelManager
from inferd.types import InferenceRequest, Signature, TensorSpec

PLAIN_YAML = CREDIT_YAML.split("preprocessing:")[0]


def _rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {"income": float(rng.exponential(3000.0)),
                               "country": "DE" if rng.random() < 0.6 else "FR"}  # fmt: skip
        if i % 10:
            row["age"] = float(rng.integers(18, 90))
        rows.append(row)
    return rows


def python_row(row: dict[str, Any]) -> list[float]:
    """The credit block, row by row, in plain Python (the baseline)."""
    age = row.get("age")
    filled = 40.0 if age is None else min(max(age, 0.0), 100.0)
    banded = 35.0 if age is None else age
    country = row["country"]
    if country not in ("DE", "FR"):
        raise ValueError(f"unknown category {country!r}")
    return [
        (filled - 40.0) / 10.0,
        math.log1p(row["income"]),
        1.0 if country == "DE" else 0.0,
        1.0 if country == "FR" else 0.0,
        0.0 if banded < 30 else (1.0 if banded < 60 else 2.0),
    ]


def _best_us(call: Callable[[], object], seconds: float) -> float:
    """Best of 5 timings of repeated calls, µs per call."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 10 or count < 3:
        call()
        count += 1
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            call()
        times.append((time.perf_counter() - start) / count)
    return min(times) * 1e6


def transform_table(seconds: float) -> None:
    config = load_model_config_text(CREDIT_YAML)
    assert config.preprocessing is not None
    signature = Signature((TensorSpec("x", "FP32", (-1, 5)),), ())
    pre = compile_preprocessing(config.preprocessing, signature)
    print(f"{'rows':>6} {'compiled µs':>12} {'+rows->cols µs':>15} {'per-row py µs':>14} "
          f"{'py/compiled':>12} {'py/(+rows)':>11}")  # fmt: skip
    for n in (1, 64, 10_000):
        rows = _rows(n)
        columns = instances_to_inputs(rows)
        expected = np.array([python_row(r) for r in rows], dtype=np.float32)
        np.testing.assert_allclose(pre.apply(columns)["x"], expected, rtol=1e-6)
        compiled = _best_us(partial(pre.apply, columns), seconds)
        with_rows = _best_us(partial(_from_rows, pre, rows), seconds)
        python = _best_us(partial(_per_row, rows), seconds)
        print(f"{n:>6} {compiled:>12.1f} {with_rows:>15.1f} {python:>14.1f} "
              f"{python / compiled:>12.2f} {python / with_rows:>11.2f}")  # fmt: skip


def _from_rows(pre: Preprocessor, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return pre.apply(instances_to_inputs(rows))


def _per_row(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([python_row(r) for r in rows], dtype=np.float32)


def load_model_config_text(text: str) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.yaml"
        path.write_text(text)
        return load_model_config(path, "credit")


async def _plane(repo: Path) -> DataPlane:
    manager = ModelManager(Metrics())
    for name in ("credit", "plain"):
        config = load_model_config(repo / name / "model.yaml", name)
        await manager.load_version(config, 1, repo / name / "1" / "model.py")
    plane = DataPlane(manager, Metrics())
    await plane.start()
    return plane


async def _drive(plane: DataPlane, model: str, concurrency: int, seconds: float) -> int:
    row = _rows(2)[1]
    inputs = (
        {k: np.array([v]) for k, v in row.items()}
        if model == "credit"
        else {"x": np.array([python_row(row)], dtype=np.float32)}
    )
    stop, done = time.perf_counter() + seconds, 0

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await plane.infer(InferenceRequest(model, None, dict(inputs)), "http")
            done += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done


async def _requests(repo: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    plane = await _plane(repo)
    runs: dict[str, list[float]] = {"plain": [], "credit": []}
    try:
        for model in runs:
            await _drive(plane, model, args.concurrency, 0.5)  # warm-up
        for _ in range(args.rounds):
            for model in runs:  # alternated, so drift in machine load hits both
                start = time.perf_counter()
                count = await _drive(plane, model, args.concurrency, args.duration)
                runs[model].append(count / (time.perf_counter() - start))
    finally:
        await plane.manager.close()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print("transform only (credit block: 3 raw columns -> 5 features)")
    transform_table(args.duration)
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder)
        write_credit_model(repo)
        plain = repo / "plain"
        (plain / "1").mkdir(parents=True)
        (plain / "1" / "model.py").write_text(CREDIT_PY)
        (plain / "model.yaml").write_text(PLAIN_YAML)
        runs = asyncio.run(_requests(repo, args))
    rps = {m: statistics.median(r) for m, r in runs.items()}
    print(f"requests: 1 row each, c={args.concurrency}, {args.rounds} rounds x "
          f"{args.duration:g} s, in-process DataPlane")  # fmt: skip
    for model, results in runs.items():
        each = ", ".join(f"{r:.0f}" for r in results)
        print(f"{model:<7} {rps[model]:>8.0f} req/s (median; rounds {each})")
    extra_us = (1 / rps["credit"] - 1 / rps["plain"]) * 1e6
    print(f"with/without preprocessing throughput: {rps['credit'] / rps['plain']:.3f} "
          f"({extra_us:+.1f} µs per request)")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
