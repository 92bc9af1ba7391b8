"""The Ray engine: Ray Data reads chunks, an actor pool infers, tasks write the parts.

    from_items(runs) -> flat_map(read a run: one row per chunk)        Ray tasks
                     -> map_batches(_Infer, ActorPoolStrategy(size=N)) one model per actor
                     -> map(write the chunk's part file)                Ray tasks
                     -> iter_rows() on the driver: mark each chunk done in the database

A chunk travels as one row, so Ray Data never splits or merges chunks, and the parts and the
manifest are the very files the local engine writes. Resumability is the same per chunk: the
driver marks a chunk done only after its part file was renamed into place. What Ray adds:
a task Ray retries writes the same part name again (harmless, the rename is atomic), and if
the driver dies the Ray job dies with it; chunks in flight are then processed again on
resume. Outputs must be on storage every Ray node can reach (a shared folder or an object
store URI), and inferd must be installed on the cluster's nodes.
"""

from __future__ import annotations

import logging
import pickle
from functools import partial
from typing import Any

import numpy as np

from inferd.jobs.engine import Engine, OnDone, ShouldStop
from inferd.jobs.processor import ChunkProcessor, JobContext
from inferd.jobs.records import Chunk, ChunkResult
from inferd.runtimes.base import import_framework

logger = logging.getLogger(__name__)


class RayEngine(Engine):
    """Processes chunks on a Ray cluster (a local one unless ``address`` is given).

    Args:
        parallelism: inference actors, each holding one copy of the model.
        address: ``ray.init`` address of a cluster, e.g. ``ray://head:10001``; None starts
            (or reuses) a local Ray.
    """

    def __init__(self, parallelism: int = 1, address: str | None = None) -> None:
        self.parallelism = parallelism
        self.address = address

    def run(
        self, ctx: JobContext, runs: list[list[Chunk]], on_done: OnDone, stop: ShouldStop
    ) -> None:
        if not runs:
            return
        ray = import_framework("ray", "ray", "ray")
        data = import_framework("ray.data", "ray", "ray")
        started = not ray.is_initialized()
        if started:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        try:
            data.DataContext.get_current().enable_progress_bars = False
            items = [{"run": i} for i in range(len(runs))]
            # I/O tasks ask for no CPU: the actors hold the cluster's CPUs, and the tasks'
            # concurrency is bounded instead, so reads never wait behind the actor pool.
            io = {"num_cpus": 0, "concurrency": max(2, self.parallelism)}
            dataset = (
                data.from_items(items, override_num_blocks=len(items))
                .flat_map(partial(_read_run, ctx, runs), **io)
                .map_batches(
                    _Infer,
                    fn_constructor_args=(ctx,),
                    batch_size=1,
                    batch_format="numpy",
                    compute=data.ActorPoolStrategy(size=self.parallelism),
                    num_cpus=1,
                )
                .map(partial(_write, ctx), **io)
            )
            for row in dataset.iter_rows():
                on_done(
                    ChunkResult(
                        int(row["seq"]),
                        int(row["rows_out"]),
                        int(row["rows_failed"]),
                        str(row["part"]),
                    )
                )
                if stop():
                    return
        finally:
            if started:
                ray.shutdown()


def _read_run(
    ctx: JobContext, runs: list[list[Chunk]], item: dict[str, Any]
) -> list[dict[str, Any]]:
    processor = ChunkProcessor(ctx)  # read only: the model is not loaded here
    return [
        {"seq": chunk.seq, "payload": pickle.dumps(processor.read(chunk), protocol=5)}
        for chunk in runs[int(item["run"])]
    ]


class _Infer:
    """One actor of the pool: loads the model once, then infers chunk after chunk."""

    def __init__(self, ctx: JobContext) -> None:
        self.processor = ChunkProcessor(ctx)
        self.processor.runtime  # noqa: B018 - load now, not on the first chunk

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        computed = [self.processor.infer(pickle.loads(p)) for p in batch["payload"]]
        payloads = np.empty(len(computed), dtype=object)
        payloads[:] = [pickle.dumps(c, protocol=5) for c in computed]
        return {"seq": batch["seq"], "payload": payloads}


def _write(ctx: JobContext, row: dict[str, Any]) -> dict[str, Any]:
    result = ChunkProcessor(ctx).write(pickle.loads(row["payload"]))
    return {
        "seq": result.seq,
        "rows_out": result.rows_out,
        "rows_failed": result.rows_failed,
        "part": result.part,
    }
