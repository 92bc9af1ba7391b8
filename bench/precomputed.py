"""Precomputed answers against online inference: ``mlp`` at c=64 through the data plane, in
one run.

Run ``.venv/bin/python bench/precomputed.py [--duration 2] [--rounds 4] [--entities 20000]``.

It runs a real batch job (``mlp`` over ``--entities`` rows with an ``id`` column passed
through), publishes its output (``Publisher``: the registry database, and Redis when
``redis-server`` is on PATH), then drives :meth:`DataPlane.infer` in-process (the HTTP
transport would add the same cost to every mode and shrink the ratios) in these modes:

- ``online``: plain one-row ``mlp`` requests, dynamic batching as served (the baseline);
- ``db`` / ``redis``: the same requests carrying a random ``entity_id`` from the table, every
  one a hit (answered from the table, no inference), with the in-process row cache as
  configured by default (rows read once are answered from memory);
- ``db-cold`` / ``redis-cold``: the same with ``local_bytes: 0``: every row read from the
  store (joined lookups: one SELECT or MGET per batch of concurrent requests);
- ``db-miss``: ids not in the table: the lookup, then online inference (the cost of a miss).

Modes run back to back in each round, in an order that rotates, so drift in the machine's
load hits all alike; ratios over ``online`` are per round and the median of rounds. The
issue asks for lookup answers at at least 3x the online throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from inferd.config import load_model_config
from inferd.jobs import JobService
from inferd.jobs.publish import Publisher
from inferd.monitoring.metrics import Metrics
from inferd.registry import Registry
from inferd.resilience.config import PrecomputedConfig
from inferd.resilience.layer import Resilience
from inferd.resilience.tables import TableStore
from inferd.serving.dataplane import DataPlane
from inferd.serving.examples import ensure_examples
from inferd.serving.importer import RepositoryImporter
from inferd.serving.manager import ModelManager
from inferd.types import InferenceRequest


def _job(registry: Registry, tmp: Path, args: argparse.Namespace) -> str:
    """Run the ``mlp`` job over ``--entities`` rows with ids; its id."""
    x = np.random.default_rng(1).random((args.entities, 256), dtype=np.float32)
    table = pa.table(
        {
            "id": np.arange(args.entities),
            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 256),
        }
    )
    pq.write_table(table, tmp / "in.parquet", row_group_size=10_000)  # fmt: skip
    service = JobService(registry, str(tmp / "artifacts"), str(tmp / "cache"), in_server=False)
    began = time.perf_counter()
    job = service.submit({"model": "mlp", "inputs": [str(tmp / "in.parquet")],
                          "output": str(tmp / "out"), "passthrough": ["id"]})  # fmt: skip
    job = service.run_here(job.id, threading.Event())
    print(f"job: {args.entities} rows in {time.perf_counter() - began:.2f} s ({job.state.value})")
    return job.id


def _publish(registry: Registry, job_id: str, store: str, redis_url: str | None) -> None:
    """Make the job's output the active table of mlp version 1 in ``store``."""
    began = time.perf_counter()
    table = Publisher(registry, redis_url).publish(job_id, {"key": "id", "store": store})
    took = time.perf_counter() - began
    print(
        f"publish to {store}: {table.rows} rows in {took:.2f} s ({table.rows / took:,.0f} rows/s)"
    )


async def _drive(
    plane: DataPlane, mode: str, args: argparse.Namespace, seconds: float, hits: list[int]
) -> int:
    rng = np.random.default_rng(0)
    x = rng.random((1, 256), dtype=np.float32)
    stop = time.perf_counter() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            params = {}
            if mode != "online":
                entity = int(rng.integers(args.entities))
                params["entity_id"] = str(entity if mode != "db-miss" else -1 - entity)
            request = InferenceRequest("mlp", None, {"x": x}, parameters=params)
            response = await plane.infer(request, "http")
            hits[0] += response.parameters.get("served_from") == "precomputed"
            done += 1

    await asyncio.gather(*(caller() for _ in range(args.concurrency)))
    return done


async def _measure(
    mode: str, repo: Path, registry: Registry, digest: str, args: argparse.Namespace,
    redis_url: str | None,
) -> tuple[float, float, float]:  # fmt: skip
    """Requests/s, CPU µs per request and the share answered from the table, for one mode."""
    metrics = Metrics(CollectorRegistry())
    manager = ModelManager(metrics)
    config = load_model_config(repo / "mlp" / "model.yaml", "mlp")
    if mode != "online":
        local = 0 if mode.endswith("-cold") else PrecomputedConfig().local_bytes
        precomputed = PrecomputedConfig(enabled=True, local_bytes=local)
        config = config.model_copy(update={"precomputed": precomputed})
    await manager.load_version(config, 1, repo / "mlp" / "1" / "model.onnx", digest=digest)
    plane = DataPlane(manager, metrics)
    resilience = Resilience(CollectorRegistry(), redis_url, tables=TableStore(registry.engine))
    plane.resilience = resilience
    await plane.start()
    await _drive(plane, mode, args, 0.5, [0])  # warm-up, and the table record is known
    hits = [0]
    cpu, wall = time.process_time(), time.perf_counter()
    count = await _drive(plane, mode, args, args.duration, hits)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await resilience.close()
    await manager.close()
    return count / wall, cpu / max(count, 1) * 1e6, hits[0] / max(count, 1)


def _phase(modes: list[str], repo: Path, registry: Registry, digest: str,
           args: argparse.Namespace, redis_url: str | None) -> None:  # fmt: skip
    """Rounds of ``modes`` in rotating order; the table and the ratios over ``online``."""
    runs: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
    order = list(modes)
    for _ in range(args.rounds):
        for mode in order:
            runs[mode].append(asyncio.run(_measure(mode, repo, registry, digest, args, redis_url)))
        order = order[1:] + order[:1]
    print(f"{'mode':<10} {'req/s (median)':>15} {'CPU µs/req':>11} {'from table':>10}   rounds")
    for mode, results in runs.items():
        rps = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        share = min(r[2] for r in results)
        each = ", ".join(f"{r[0]:.0f}" for r in results)
        print(f"{mode:<10} {rps:>15.0f} {cpu:>11.1f} {share:>10.1%}   {each}")
    for mode in modes[1:]:
        ratios = [a[0] / b[0] for a, b in zip(runs[mode], runs["online"], strict=True)]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"{mode}/online throughput: median {statistics.median(ratios):.2f}x ({each})")


@contextlib.contextmanager
def _redis_server(folder: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir",
                             str(folder), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--entities", type=int, default=20_000, help="rows of the table")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        repo = ensure_examples(tmp / "repo")
        registry = Registry(f"sqlite:///{tmp / 'registry.db'}")
        RepositoryImporter(repo, registry).import_all()
        digest = registry.get_version("mlp", 1).digest
        job_id = _job(registry, tmp, args)
        print(f"mlp, c={args.concurrency}, {args.rounds} rounds x {args.duration:g} s, "
              f"in-process, {args.entities} entities")  # fmt: skip
        _publish(registry, job_id, "db", None)
        _phase(["online", "db", "db-cold", "db-miss"], repo, registry, digest, args, None)
        with _redis_server(tmp) as redis_url:
            if redis_url is None:
                print("redis: skipped (no redis-server on PATH)")
            else:
                _publish(registry, job_id, "redis", redis_url)
                _phase(["online", "redis", "redis-cold"], repo, registry, digest, args, redis_url)
        registry.close()
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
