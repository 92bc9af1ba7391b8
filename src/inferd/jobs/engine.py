"""The job engine extension point, and the bounded read -> infer -> write pipeline.

    Engine (ABC)
    ├── LocalEngine   inferd.jobs.local: this process, or worker processes
    └── RayEngine     inferd.jobs.ray_engine: Ray Data with an actor pool

An engine processes chunks and reports each one *after* its part file is in place; the
runner then marks it done in the database. That order is what makes resume exact.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from inferd.errors import InferdError
from inferd.jobs.processor import ChunkProcessor, JobContext
from inferd.jobs.records import Chunk, ChunkResult

OnDone = Callable[[ChunkResult], None]
ShouldStop = Callable[[], bool]


class EngineError(InferdError):
    """A worker failed in a way that is not about one row (a crash, an unreadable file)."""


class Engine(ABC):
    """Runs a job's pending chunks."""

    @abstractmethod
    def run(
        self, ctx: JobContext, runs: list[list[Chunk]], on_done: OnDone, stop: ShouldStop
    ) -> None:
        """Process every chunk of ``runs``; return early once ``stop()`` is true.

        Args:
            ctx: the job.
            runs: chunks grouped in runs that one worker should read in order (the pieces
                of one large Parquet row group); each run is one unit of work.
            on_done: called once per chunk after its part file is in place.
            stop: polled between chunks; True asks the engine to stop soon.

        Raises:
            EngineError: a worker failed.
        """


def group_runs(chunks: list[Chunk]) -> list[list[Chunk]]:
    """Group consecutive chunks that share a Parquet row-group range into one run."""
    runs: list[list[Chunk]] = []
    for chunk in chunks:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.file_index == chunk.file_index
            and (last.loc_start, last.loc_end) == (chunk.loc_start, chunk.loc_end)
            and last.start_row + last.num_rows == chunk.start_row
        ):
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return runs


class _Abortable:
    """A bounded queue whose waits end when the pipeline aborts."""

    END = object()

    def __init__(self, depth: int, abort: threading.Event) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(depth)
        self.abort = abort

    def put(self, item: Any) -> bool:
        while not self.abort.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        while True:
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.abort.is_set():
                    return self.END


def run_pipeline(
    processor: ChunkProcessor,
    chunks: Iterable[Chunk],
    on_done: OnDone,
    stop: ShouldStop,
    depth: int = 2,
) -> None:
    """Read, infer and write chunks in three overlapping stages with bounded queues.

    Reading the next chunk and writing the previous one run in threads while this thread
    infers, so I/O overlaps compute (Arrow, file I/O and the runtimes release the GIL), and
    at most ``depth`` chunks wait between two stages, so memory stays bounded.

    Raises:
        The first exception any stage raised.
    """
    abort = threading.Event()
    errors: list[BaseException] = []
    to_infer, to_write = _Abortable(depth, abort), _Abortable(depth, abort)

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as err:
                errors.append(err)
                abort.set()

        return run

    def read() -> None:
        try:
            for chunk in chunks:
                if stop() or not to_infer.put(processor.read(chunk)):
                    break
        finally:
            to_infer.put(_Abortable.END)

    def write() -> None:
        while (item := to_write.get()) is not _Abortable.END:
            on_done(processor.write(item))

    threads = [
        threading.Thread(target=guarded(f), name=f"job-{f.__name__}", daemon=True)
        for f in (read, write)
    ]
    for thread in threads:
        thread.start()

    def infer() -> None:
        try:
            while (item := to_infer.get()) is not _Abortable.END:
                if not to_write.put(processor.infer(item)):
                    break
        finally:
            to_write.put(_Abortable.END)

    guarded(infer)()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
