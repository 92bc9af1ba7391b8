"""The dynamic batcher: one per loaded model version, composed in front of its runtime.

Requests wait in a priority queue. Whenever an instance (a worker thread) is free, the batcher
takes as many compatible requests as the policy allows, concatenates them along the first
dimension, runs the runtime in the worker thread, splits the outputs by row and hands each
caller its own rows. Requests that arrive while every instance is busy form the next batch,
so under load batches grow by themselves and a lone request is dispatched at once (unless the
model asks for ``max_queue_delay_ms``, which bounds how long it may wait for company).

Everything except the runtime call happens on the event loop thread, so the queue needs no
locks; futures are resolved from loop callbacks only.

A runtime that raises on a batch of several requests may have done so for one request's
input: the batch's requests then run again one by one in the same worker thread, so only the
requests that fail alone fail, and the others get their answers (a batch-wide fault, e.g. an
unloaded runtime, costs one extra runtime call per request of that batch).

Instances are slots in a pool of runtimes: a thread-safe runtime fills every slot with the same
object, one that is not (``Runtime.thread_safe`` False) gets a loaded copy per slot. The count
can change while serving (:meth:`Batcher.add_instance`, :meth:`Batcher.take_idle_instance`,
driven by inferd.serving.instances); a :class:`LoadMeter` integrates the queue depth and busy
slots that the decision rests on.

Why past 500 lines: the queue, dispatch, instance slots and their accounting all read and
write the same loop-thread state at every submit and every finished batch; split into classes
they would call each other on the hot path for every request. The worker-thread part (run,
split, run alone) is the first to move out when it grows again.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from inferd.batching.policy import BatchPolicy
from inferd.batching.scaling import LoadMeter, LoadSample
from inferd.errors import (
    InferdError,
    InferenceFailed,
    InvalidInput,
    QueueFull,
    RequestTimeout,
    ServerShuttingDown,
)
from inferd.monitoring.tracing import BatchTiming, RequestTrace, record_batch, sampled_trace
from inferd.runtimes.base import Runtime
from inferd.types import BatchInfo

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
BatchResult = tuple[Arrays, BatchInfo]
# Called on the loop thread after every runtime call: (rows, requests, compute seconds, ok).
BatchObserver = Callable[[int, int, float, bool], None]
# What a worker thread hands back: each request's outputs (or the error it alone raised),
# runtime start, runtime seconds.
_RunResult = tuple[list[Arrays | Exception], float, float]
# The background class (shadow traffic): after every priority a request can name (those are
# clamped below it), and allowed only half the queue, so it never costs a client its place.
BACKGROUND_PRIORITY = 2**63 - 1


@dataclass(slots=True, eq=False)
class _Pending:
    inputs: Arrays
    rows: int
    priority: int
    seq: int
    future: asyncio.Future[BatchResult]
    arrival: float
    shape_key: tuple[Any, ...]
    dispatched: float = 0.0
    position: int = field(default=0)
    trace: RequestTrace | None = None  # set only for a sampled request (tracing on)

    def __lt__(self, other: _Pending) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


class Batcher:
    """Queue, batch and run requests for one model version.

    Args:
        runtime: the loaded runtime; ``infer`` is called in worker threads only.
        policy: batch and queue policy.
        model: model name, for error messages.
        version: version label, for error messages.
        observer: optional per-batch callback; its failures are logged, never raised.
        copies: for a runtime that is not thread-safe, one more loaded copy per instance
            beyond the first (``policy.instances - 1`` of them); empty to share ``runtime``.
    """

    def __init__(
        self,
        runtime: Runtime,
        policy: BatchPolicy,
        *,
        model: str,
        version: str,
        observer: BatchObserver | None = None,
        copies: Sequence[Runtime] = (),
    ) -> None:
        if copies and len(copies) != policy.instances - 1:
            raise ValueError(f"expected {policy.instances - 1} runtime copies, got {len(copies)}")
        self.runtime = runtime
        self.policy = policy
        self.model = model
        self.version = version
        self._observer = observer
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._queued = 0
        self._queued_rows = 0
        # Free instance slots; a slot is the runtime its calls use.
        self._free: list[Runtime] = [runtime, *copies] if copies else [runtime] * policy.instances
        self._instances = policy.instances
        # Only an adaptive count is sampled: a fixed one pays nothing on the request path.
        adaptive = policy.max_instances > policy.instances
        self._meter = LoadMeter(time.perf_counter()) if adaptive else None
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._drained: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=policy.max_instances, thread_name_prefix=f"inferd-{model}-{version}"
        )

    @property
    def queued(self) -> int:
        """Requests waiting (not yet dispatched)."""
        return self._queued

    @property
    def in_flight(self) -> int:
        """Runtime calls running now."""
        return self._instances - len(self._free)

    @property
    def instances(self) -> int:
        """Runtime calls that may run at once now."""
        return self._instances

    def add_instance(self, copy: Runtime | None = None) -> None:
        """One more runtime call at once (up to ``policy.max_instances``); ``copy`` is the
        new slot's own loaded runtime when the runtime is not thread-safe."""
        if self._instances >= self.policy.max_instances:
            raise ValueError(f"already at max_instances {self.policy.max_instances}")
        self._instances += 1
        self._free.append(copy if copy is not None else self.runtime)
        if self._loop is not None and self._heap and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._dispatch, context=Context())

    def take_idle_instance(self) -> Runtime | None:
        """One fewer runtime call at once, taking a free slot: its runtime (a copy to unload
        when it is not :attr:`runtime`), or None when no slot is free or one is left."""
        if self._instances <= 1 or not self._free:
            return None
        # Keep the original runtime serving: hand back a copy when there is one.
        index = next((i for i, r in enumerate(self._free) if r is not self.runtime), 0)
        self._instances -= 1
        return self._free.pop(index)

    def copies(self) -> list[Runtime]:
        """The loaded copies in the pool besides :attr:`runtime` (to unload after close)."""
        return [r for r in self._free if r is not self.runtime]

    def sample_load(self) -> LoadSample:
        """Queue depth and busy instances since the previous call (event loop only)."""
        if self._meter is None:  # a fixed count: no history, only the present
            busy = self.in_flight
            return LoadSample(0.0, float(self._queued), float(busy), busy, self._instances)
        return self._meter.sample(time.perf_counter(), self._instances)

    async def submit(
        self, inputs: Arrays, *, priority: int = 0, timeout_s: float | None = None,
        background: bool = False,
    ) -> BatchResult:  # fmt: skip
        """Queue one request and wait for its rows of the batch result.

        Args:
            inputs: named arrays, all with the same first dimension when batching is on.
            priority: 0 for the policy default, otherwise 1 is the most urgent.
            timeout_s: the longest the caller waits in total, or None.
            background: the lowest class (:data:`BACKGROUND_PRIORITY`), served after every
                other waiting request and refused once half the queue is taken.

        Raises:
            QueueFull: ``max_queue_size`` requests are already waiting (half, in the
                background class).
            RequestTimeout: the queue timeout or ``timeout_s`` ran out.
            ServerShuttingDown: the batcher is draining.
            InferenceFailed: the runtime raised on this request (run alone once its batch
                failed).
        """
        if self._closing:
            raise ServerShuttingDown(f"model '{self.model}' version {self.version}")
        limit = self.policy.max_queue_size
        if background:
            limit, priority = max(limit // 2, 1), BACKGROUND_PRIORITY
        elif priority <= 0:
            priority = self.policy.default_priority
        else:
            priority = min(priority, BACKGROUND_PRIORITY - 1)
        if self._queued >= limit:
            raise QueueFull(self.model, self.version, limit)
        loop = self._loop or self._bind_loop()
        now = time.perf_counter()
        pending = _Pending(
            inputs=inputs,
            rows=self._rows(inputs),
            priority=priority,
            seq=next(self._seq),
            future=loop.create_future(),
            arrival=now,
            shape_key=self._shape_key(inputs),
            trace=sampled_trace(),
        )
        heapq.heappush(self._heap, pending)
        self._queued += 1
        self._queued_rows += pending.rows
        if self._meter is not None:
            self._meter.update(now, self._queued, self._instances - len(self._free))
        if not self._scheduled and self._free:
            self._scheduled = True
            # A fresh context: a batch's callbacks (and their log lines) belong to no one
            # request, not to whichever request's task happened to schedule them.
            loop.call_soon(self._dispatch, context=Context())
        if timeout_s is None and self.policy.queue_timeout_s is None:
            return await pending.future
        return await self._wait_with_limits(pending, timeout_s)

    async def run_on_each_thread(self, fn: Callable[[Runtime], object]) -> None:
        """Run ``fn(slot runtime)`` once on each of :attr:`instances` worker threads, each
        with another slot (e.g. warm-up: frameworks such as PyTorch, XGBoost and TensorFlow
        keep per-thread state that the first call pays for). Call before serving."""
        slots = list(self._free)
        barrier = threading.Barrier(len(slots))

        def once(runtime: Runtime) -> None:
            fn(runtime)
            barrier.wait(timeout=300)  # hold the thread so the next call lands on another

        loop = self._loop or self._bind_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, once, r) for r in slots))

    async def close(self, *, drain: bool = True) -> None:
        """Stop taking requests; finish queued and running ones (or fail the queued ones)."""
        self._closing = True
        if self._loop is not None:
            if not drain:
                self._fail_queued(
                    ServerShuttingDown(f"model '{self.model}' version {self.version}")
                )
            self._drained = asyncio.Event()
            self._dispatch()
            self._check_drained()
            await self._drained.wait()
        # Worker threads are idle now; don't block the loop joining them.
        self._executor.shutdown(wait=False)

    # -- queue side (event loop thread) -------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _rows(self, inputs: Arrays) -> int:
        if not self.policy.batching:
            return 1
        rows = -1
        for name, array in inputs.items():
            if array.ndim == 0:
                raise InvalidInput(
                    f"input '{name}'", "at least one dimension (the batch)", "a scalar"
                )
            if rows not in (-1, array.shape[0]):
                raise InvalidInput(
                    f"input '{name}'.shape[0]",
                    f"the same batch size as the other inputs ({rows})",
                    str(array.shape[0]),
                )
            rows = array.shape[0]
        return max(rows, 0)

    def _shape_key(self, inputs: Arrays) -> tuple[Any, ...]:
        # Requests can share a batch only if every input agrees past the batch dimension.
        if not self.policy.batching:
            return ()
        return tuple((n, a.shape[1:], a.dtype) for n, a in inputs.items())

    async def _wait_with_limits(self, pending: _Pending, timeout_s: float | None) -> BatchResult:
        try:
            return await self._wait_shielded(pending, timeout_s)
        except asyncio.CancelledError:
            pending.future.cancel()  # the caller went away: drop it from the queue
            raise

    async def _wait_shielded(self, pending: _Pending, timeout_s: float | None) -> BatchResult:
        queue_s = self.policy.queue_timeout_s
        first = min(t for t in (timeout_s, queue_s) if t is not None)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), first)
        except TimeoutError:
            waited = time.perf_counter() - pending.arrival
            if not pending.dispatched:
                pending.future.cancel()  # the dispatcher skips cancelled entries
                raise RequestTimeout(
                    self.model, self.version, waited * 1000, first * 1000, "in the queue"
                ) from None
        # Dispatched in time: only the caller's own total timeout still applies.
        if timeout_s is None:
            return await pending.future
        remaining = timeout_s - (time.perf_counter() - pending.arrival)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), max(remaining, 0.0))
        except TimeoutError:
            waited = time.perf_counter() - pending.arrival
            raise RequestTimeout(
                self.model, self.version, waited * 1000, timeout_s * 1000, "during inference"
            ) from None

    def _dispatch(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._free and self._heap:
            wait = self._wait_for_company()
            if wait > 0 and self._loop is not None:
                self._timer = self._loop.call_later(wait, self._dispatch, context=Context())
                break
            batch = self._take()
            if batch:
                self._start(batch)
        if self._meter is not None:
            self._meter.update(time.perf_counter(), self._queued, self._instances - len(self._free))
        self._check_drained()

    def _wait_for_company(self) -> float:
        """Seconds the queue should still wait for a fuller batch (0: dispatch now)."""
        delay = self.policy.max_queue_delay_s
        if delay <= 0 or self._closing or self._queued_rows >= self.policy.target_rows:
            return 0.0
        oldest = min(p.arrival for p in self._heap)
        return max(oldest + delay - time.perf_counter(), 0.0)

    def _take(self) -> list[_Pending]:
        limit = self.policy.cut(self._queued_rows) if self.policy.batching else 1
        batch: list[_Pending] = []
        rows = 0
        set_aside: list[_Pending] = []
        while self._heap:
            pending = heapq.heappop(self._heap)
            if pending.future.done():  # timed out or the caller went away
                self._queued -= 1
                self._queued_rows -= pending.rows
                continue
            if batch and (pending.shape_key != batch[0].shape_key or rows + pending.rows > limit):
                set_aside.append(pending)
                if rows + pending.rows > limit:
                    break
                continue
            batch.append(pending)
            rows += pending.rows
            self._queued -= 1
            self._queued_rows -= pending.rows
            if rows >= limit:
                break
        for pending in set_aside:
            heapq.heappush(self._heap, pending)
        return batch

    def _start(self, batch: list[_Pending]) -> None:
        loop = self._loop or self._bind_loop()
        runtime = self._free.pop()
        now = time.perf_counter()
        for position, pending in enumerate(batch):
            pending.dispatched = now
            pending.position = position
        work = loop.run_in_executor(self._executor, self._run, batch, runtime)
        work.add_done_callback(partial(self._finish, batch, runtime), context=Context())

    def _finish(
        self, batch: list[_Pending], runtime: Runtime, work: asyncio.Future[_RunResult]
    ) -> None:
        self._free.append(runtime)
        rows = sum(p.rows for p in batch)
        try:
            results, compute_start, compute_s = work.result()
        except BaseException as err:
            self._fail_batch(batch, err)
            self._observe(rows, len(batch), 0.0, ok=False)
            self._trace(batch, rows, None, 0.0, err)
        else:
            failed = 0
            for pending, outputs in zip(batch, results, strict=True):
                if isinstance(outputs, Exception):
                    failed += 1
                    self._fail_batch([pending], outputs)
                elif not pending.future.done():
                    info = BatchInfo(
                        batch_size=len(batch),
                        rows=rows,
                        wait_time_ms=(pending.dispatched - pending.arrival) * 1000.0,
                        position_in_batch=pending.position,
                        compute_ms=compute_s * 1000.0,
                    )
                    pending.future.set_result((outputs, info))
            self._observe(rows, len(batch), compute_s, ok=not failed)
            self._trace(batch, rows, compute_start, compute_s, None)
        self._dispatch()

    def _fail_batch(self, batch: list[_Pending], err: BaseException) -> None:
        if not isinstance(err, InferdError):
            logger.error(
                "model %s version %s: batch of %d requests failed",
                self.model,
                self.version,
                len(batch),
                exc_info=err,
            )
            reason = f"{type(err).__name__}: {err}"[:500]
            err = InferenceFailed(self.model, self.version, reason)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(err)
                pending.future.exception()  # mark retrieved: the caller may have gone away

    def _fail_queued(self, err: InferdError) -> None:
        for pending in self._heap:
            if not pending.future.done():
                pending.future.set_exception(err)
                pending.future.exception()
        self._heap.clear()
        self._queued = 0
        self._queued_rows = 0
        if self._meter is not None:
            self._meter.update(time.perf_counter(), 0, self._instances - len(self._free))

    def _observe(self, rows: int, requests: int, compute_s: float, *, ok: bool) -> None:
        if self._observer is None:
            return
        try:
            self._observer(rows, requests, compute_s, ok)
        except Exception:
            logger.exception("batch observer failed (ignored)")

    def _trace(
        self, batch: list[_Pending], rows: int, compute_start: float | None, compute_s: float,
        error: BaseException | None,
    ) -> None:  # fmt: skip
        """Spans for a batch holding a sampled request (tracing on); a loop over the batch
        otherwise. Like observers, a failure here is logged, never raised."""
        for pending in batch:  # no allocation for the common, untraced batch
            if pending.trace is not None:
                break
        else:
            return
        traced = [(p.trace, p.arrival, p.position) for p in batch if p.trace is not None]
        tracer = traced[0][0].tracer
        if tracer is None:
            return
        end = None if compute_start is None else compute_start + compute_s
        timing = BatchTiming(batch[0].dispatched, time.perf_counter(), compute_start, end)
        attributes = {"inferd.model": self.model, "inferd.model_version": self.version,
                      "inferd.batch.size": len(batch), "inferd.batch.rows": rows}  # fmt: skip
        try:
            record_batch(tracer, traced, timing, attributes, error)
        except Exception:
            logger.exception("batch tracing failed (ignored)")

    def _check_drained(self) -> None:
        if self._drained is not None and not self._heap and len(self._free) == self._instances:
            self._drained.set()

    # -- worker thread ------------------------------------------------------------------------

    def _run(self, batch: list[_Pending], runtime: Runtime) -> _RunResult:
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = {
                name: np.concatenate([p.inputs[name] for p in batch]) for name in batch[0].inputs
            }
        start = time.perf_counter()
        results: list[Arrays | Exception]
        try:
            outputs = runtime.infer(inputs)
            results = [outputs] if len(batch) == 1 else list(self._split(batch, outputs))
        except Exception as err:
            if len(batch) == 1:
                raise
            results = self._run_alone(batch, runtime, err)
        return results, start, time.perf_counter() - start

    def _run_alone(
        self, batch: list[_Pending], runtime: Runtime, err: Exception
    ) -> list[Arrays | Exception]:
        """Each request of a failed batch on its own: one bad input fails only its request."""
        logger.info(
            "model %s version %s: a batch of %d requests failed (%s: %s); running them one by one",
            self.model, self.version, len(batch), type(err).__name__, str(err)[:200],
        )  # fmt: skip
        results: list[Arrays | Exception] = []
        for pending in batch:
            try:
                results.append(self._split([pending], runtime.infer(pending.inputs))[0])
            except Exception as alone:
                results.append(alone)
        return results

    def _split(self, batch: list[_Pending], outputs: Arrays) -> list[Arrays]:
        total = sum(p.rows for p in batch)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise InferenceFailed(
                    self.model,
                    self.version,
                    f"output '{name}' has shape {array.shape}, expected {total} rows for the batch",
                )
        results: list[Arrays] = []
        start = 0
        for pending in batch:
            end = start + pending.rows
            results.append({name: array[start:end] for name, array in outputs.items()})
            start = end
        return results
