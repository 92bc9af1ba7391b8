"""The local engine: the read -> infer -> write pipeline in this process or in N processes.

With one worker the CLI runs the pipeline in this process (``inferd jobs run``). Otherwise,
and always inside a server, each worker is a fresh (spawned) process that loads the model
once, lowers its own priority with ``os.nice`` (so a serving process on the same host
answers online requests first), and pulls runs of chunks from a shared queue. Results come
back on another queue; only this process writes to the database.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable
from typing import Any

from inferd.errors import InferdError
from inferd.jobs.engine import Engine, EngineError, OnDone, ShouldStop, run_pipeline
from inferd.jobs.processor import ChunkProcessor, JobContext
from inferd.jobs.records import Chunk
from inferd.jobs.throttle import BusySignal, Throttle
from inferd.runtimes import Runtime

logger = logging.getLogger(__name__)

_POLL_S = 0.2


class LocalEngine(Engine):
    """Processes chunks on this host.

    Args:
        parallelism: worker processes.
        nice: niceness added to worker processes (0 to 19).
        busy: true while the serving process answers online requests; workers then use at
            most ``busy_share`` of one CPU each (worker processes only).
        busy_share: see ``busy``.
        in_process: with one worker, run the pipeline in this process instead (the CLI does;
            a server never does, so a job cannot take the event loop's CPU).
        runtime: an already loaded runtime for the in-process case (saves a second load); the
            engine unloads it when done.
    """

    def __init__(
        self,
        parallelism: int = 1,
        nice: int = 0,
        *,
        in_process: bool = False,
        runtime: Runtime | None = None,
        busy: Callable[[], bool] | None = None,
        busy_share: float = 1.0,
    ) -> None:
        self.parallelism = parallelism
        self.nice = nice
        self.busy, self.busy_share = busy, busy_share
        self.in_process = in_process and parallelism == 1
        self.runtime = runtime

    def run(
        self, ctx: JobContext, runs: list[list[Chunk]], on_done: OnDone, stop: ShouldStop
    ) -> None:
        if not runs:
            return
        if self.in_process:
            processor, self.runtime = ChunkProcessor(ctx, self.runtime), None
            try:
                run_pipeline(processor, (c for run in runs for c in run), on_done, stop)
            finally:
                processor.close()
            return
        self._run_processes(ctx, runs, on_done, stop)

    def _run_processes(
        self, ctx: JobContext, runs: list[list[Chunk]], on_done: OnDone, stop: ShouldStop
    ) -> None:
        mp = multiprocessing.get_context("spawn")  # never fork a process that has threads
        tasks: Any = mp.Queue()
        results: Any = mp.Queue()
        count = min(self.parallelism, len(runs))
        for run in runs:
            tasks.put(run)
        for _ in range(count):
            tasks.put(None)
        busy = mp.Event()
        signal = BusySignal(self.busy, busy).start() if self.busy is not None else None
        workers = [
            mp.Process(
                target=_worker,
                args=(ctx, tasks, results, self.nice, busy, self.busy_share),
                name=f"inferd-job-{ctx.model.job_id}-{i}",
                daemon=True,
            )
            for i in range(count)
        ]
        for worker in workers:
            worker.start()
        try:
            self._collect(workers, results, sum(len(r) for r in runs), on_done, stop)
        finally:
            if signal is not None:
                signal.stop()
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
            for worker in workers:
                worker.join(timeout=10)
            tasks.cancel_join_thread()
            results.cancel_join_thread()

    def _collect(
        self, workers: list[Any], results: Any, chunks: int, on_done: OnDone, stop: ShouldStop
    ) -> None:
        left, exited = chunks, 0
        while left > 0 or exited < len(workers):
            if stop():
                return
            try:
                kind, value = results.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead and results.empty():
                    raise EngineError(
                        f"job worker {dead[0].name} exited with code {dead[0].exitcode} "
                        "(killed, or out of memory); resume the job to continue"
                    ) from None
                continue
            if kind == "done":
                on_done(value)
                left -= 1
            elif kind == "exit":
                exited += 1
            else:
                raise EngineError(value)


def lower_priority(nice: int) -> None:
    """Make this process (and the threads it starts later) yield the CPU to others.

    Linux applies niceness per thread and new threads inherit it, so this runs before any
    thread starts. The lowest niceness, 19, also asks for ``SCHED_IDLE``: the process then
    runs only when no other process of its group wants the CPU.
    """
    if nice:
        os.nice(nice)
    if nice >= 19 and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            logger.warning("job worker: SCHED_IDLE refused; running at niceness %d", nice)


def _worker(
    ctx: JobContext, tasks: Any, results: Any, nice: int, busy: Any, busy_share: float
) -> None:
    lower_priority(nice)
    try:
        processor = ChunkProcessor(ctx, throttle=Throttle(busy, busy_share))
        chunks = (chunk for run in iter(tasks.get, None) for chunk in run)
        run_pipeline(processor, chunks, lambda r: results.put(("done", r)), lambda: False)
        processor.close()
        results.put(("exit", None))
    except InferdError as err:
        results.put(("error", err.message))
    except BaseException as err:
        logger.error("job worker failed:\n%s", traceback.format_exc())
        results.put(("error", f"job worker failed: {type(err).__name__}: {err}"))
