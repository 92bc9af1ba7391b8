"""Shadow traffic: a sampled copy of a model's requests, run on another version afterwards.

    ShadowMirror ── targets: model -> _Target (config, bounded queue, one consumer task)
         │    offer(): after the primary's response is made, on the request path: a bucket
         │             test on the request id and a put_nowait (dropped and counted if full)
         │    consumer: takes what is queued (up to MAX_CONCURRENT at once, so they batch),
         │             runs each on the shadow version at the batcher's background priority,
         │             compares with the primary's outputs (:mod:`inferd.traffic.agreement`)
         └── run(): refresh the configs when the registry revision moves; every ``flush_s``
                    upsert this process's cumulative agreement per version pair

Nothing the shadow does reaches the client: the response is complete before ``offer`` is
called, the consumer runs as its own task, and a shadow failure is counted and logged only.
Sampling is deterministic per request id (a salted hash into 10,000 buckets, the experiments'
hash), so every worker and replica mirrors the same requests; a request without an id is
sampled by a low-discrepancy counter, which keeps the configured fraction exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from inferd.errors import InferdError, QueueFull, RegistryUnavailable
from inferd.registry.outage import OutageLog
from inferd.traffic.agreement import Agreement, compare
from inferd.traffic.router import BUCKETS, unit_bucket
from inferd.traffic.shadow_config import ShadowConfig
from inferd.types import InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 64  # shadow requests in flight per model: enough to fill a batch
_GOLDEN = 0.6180339887498949  # the counter sampler's step (frac(n * phi) spreads evenly)
Outputs = dict[str, np.ndarray]
# Runs a request on the named version at background priority (the data plane provides it).
Runner = Callable[[InferenceRequest, str], Awaitable[Outputs]]
Pair = tuple[str, str, str]  # model, primary version, shadow version


class ShadowObserver(Protocol):
    """Where each shadow event goes besides the per-pair sums (Prometheus metrics)."""

    def dropped(self, pair: Pair) -> None: ...
    def answered(self, pair: Pair, result: str, comparison: Any, seconds: float) -> None: ...
    def queue_depth(self, model: str, depth: int) -> None: ...


class ShadowSource(Protocol):
    """The configs and the per-process agreement rows (:class:`ShadowStore`)."""

    def revision(self) -> int: ...
    def configs(self) -> list[ShadowConfig]: ...
    def save_aggregates(
        self, source: str, data: dict[Pair, dict[str, Any]], now: datetime
    ) -> None: ...


@dataclass(slots=True)
class _Item:
    request: InferenceRequest
    outputs: Outputs
    primary: str
    primary_ms: float


class _Target:
    """One model's shadow: its config, sample threshold, queue and consumer."""

    def __init__(self, config: ShadowConfig) -> None:
        self.config = config
        self.version = str(config.version)
        self.threshold = round(config.fraction * BUCKETS)
        self.salt = f"shadow/{config.model}"
        self.queue: asyncio.Queue[_Item] | None = None  # made on the loop, at the first offer
        self.task: asyncio.Task[None] | None = None
        self.counter = 0

    def sampled(self, request_id: str | None) -> bool:
        if request_id is None:
            self.counter += 1
            return (self.counter * _GOLDEN) % 1.0 < self.config.fraction
        return unit_bucket(self.salt, request_id) < self.threshold


class ShadowMirror:
    """Mirrors sampled requests to shadow versions and tallies agreement, in one process.

    Args:
        store: configs and agreement rows; None keeps everything in memory (tests, tools).
        observer: metrics to update; None for none.
        clock: seconds since the epoch, for flushes.
        flush_s: how often the agreement sums are written to the registry.
        source: this process's name in the aggregate rows.
    """

    def __init__(
        self, store: ShadowSource | None = None, *, observer: ShadowObserver | None = None,
        clock: Callable[[], float] = time.time, flush_s: float = 5.0, source: str | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.observer = observer
        self.clock = clock
        self.flush_s = flush_s
        self.source = source or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.targets: dict[str, _Target] = {}
        self.pairs: dict[Pair, Agreement] = {}
        self.runner: Runner | None = None
        self._flushed: dict[Pair, int] = {}
        self._revision = -1
        self._last_flush = clock()

    # -- the request path --------------------------------------------------------------------

    def offer(self, request: InferenceRequest, response: InferenceResponse) -> None:
        """Queue a copy of an answered request for its model's shadow, if sampled."""
        target = self.targets.get(request.model_name)
        if target is None or response.model_version == target.version or self.runner is None:
            return
        if not target.sampled(request.id):
            return
        pair = (request.model_name, response.model_version, target.version)
        agreement = self._agreement(pair)
        queue = target.queue
        if queue is None:
            queue = target.queue = asyncio.Queue(target.config.queue_size)
            target.task = asyncio.get_running_loop().create_task(self._consume(target, queue))
        item = _Item(request, response.outputs, response.model_version, response.latency_ms)
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            agreement.drop()
            if self.observer is not None:
                self.observer.dropped(pair)
            return
        agreement.queue()

    # -- the consumer ------------------------------------------------------------------------

    async def _consume(self, target: _Target, queue: asyncio.Queue[_Item]) -> None:
        while True:
            items = [await queue.get()]
            while len(items) < MAX_CONCURRENT and not queue.empty():
                items.append(queue.get_nowait())
            if self.observer is not None:
                self.observer.queue_depth(target.config.model, queue.qsize())
            await asyncio.gather(*(self._mirror(target, item) for item in items))
            for _ in items:
                queue.task_done()

    async def _mirror(self, target: _Target, item: _Item) -> None:
        pair = (target.config.model, item.primary, target.version)
        agreement = self._agreement(pair)
        request = dataclasses.replace(item.request, model_version=target.version,
                                      timeout_ms=None, priority=0)  # fmt: skip
        start = time.perf_counter()
        try:
            outputs = await self._run(request, target.version)
            comparison = compare(item.outputs, outputs)
        except asyncio.CancelledError:
            raise
        except QueueFull:  # the shadow version is saturated (or overload control shed it)
            agreement.drop(queued=True)
            if self.observer is not None:
                self.observer.dropped(pair)
            return
        except Exception as err:  # never the client's: count it, log it, carry on
            agreement.fail()
            self._observe(pair, "failed", None, time.perf_counter() - start)
            detail = err.message if isinstance(err, InferdError) else repr(err)
            logger.warning("shadow %s version %s failed: %s", pair[0], pair[2], detail)
            return
        seconds = time.perf_counter() - start
        agreement.add(comparison, item.primary_ms, seconds * 1000.0)
        result = "compared" if comparison.comparable else "incomparable"
        self._observe(pair, result, comparison, seconds)

    async def _run(self, request: InferenceRequest, version: str) -> Outputs:
        if self.runner is None:
            raise RuntimeError("no shadow runner bound (the data plane binds one)")
        return await self.runner(request, version)

    def _observe(self, pair: Pair, result: str, comparison: Any, seconds: float) -> None:
        if self.observer is None:
            return
        try:
            self.observer.answered(pair, result, comparison, seconds)
        except Exception:
            logger.exception("shadow metrics failed (ignored)")

    def _agreement(self, pair: Pair) -> Agreement:
        agreement = self.pairs.get(pair)
        if agreement is None:
            agreement = self.pairs[pair] = Agreement()
        return agreement

    # -- configuration -----------------------------------------------------------------------

    def apply(self, configs: list[ShadowConfig]) -> None:
        """Make ``configs`` the live shadows (on the event loop); a changed or removed one's
        queued copies are dropped, and counted so."""
        wanted = {c.model: c for c in configs}
        for model, target in list(self.targets.items()):
            if not target.config.same(wanted.get(model)):
                self._retire(self.targets.pop(model))
        for model, config in wanted.items():
            if model not in self.targets:
                self.targets[model] = _Target(config)

    def _retire(self, target: _Target) -> None:
        if target.task is not None:
            target.task.cancel()
        while target.queue is not None and not target.queue.empty():
            item = target.queue.get_nowait()
            self._agreement((target.config.model, item.primary, target.version)).drop(queued=True)

    async def idle(self) -> None:
        """Wait until every queued copy has been run and counted (tests, benchmarks)."""
        for target in list(self.targets.values()):
            if target.queue is not None:
                await target.queue.join()

    def agreement(self, model: str) -> dict[tuple[str, str], Agreement]:
        """This process's (not yet merged) agreement of ``model``'s version pairs."""
        return {(p, s): a for (m, p, s), a in self.pairs.items() if m == model}

    # -- refresh and flush -------------------------------------------------------------------

    def collect(self) -> dict[Pair, dict[str, Any]]:
        """Snapshot the pairs that changed since the last flush (on the event loop)."""
        changed = {}
        for pair, agreement in self.pairs.items():
            if agreement.changes != self._flushed.get(pair, 0):
                changed[pair] = agreement.to_dict()
                self._flushed[pair] = agreement.changes
        return changed

    def write(self, data: dict[Pair, dict[str, Any]]) -> None:
        """Upsert a :meth:`collect` (blocking: call it in a thread)."""
        if self.store is not None and data:
            self.store.save_aggregates(self.source, data, datetime.fromtimestamp(self.clock(), UTC))

    async def flush(self) -> None:
        """Write what changed; on failure it is written next time (the sums are cumulative)."""
        data = self.collect()
        try:
            await asyncio.to_thread(self.write, data)
        except BaseException:
            self._flushed.clear()
            raise

    async def tick(self) -> None:
        """Refresh when the revision moved; flush when ``flush_s`` has passed."""
        if self.store is None:
            return
        revision = await asyncio.to_thread(self.store.revision)
        if revision != self._revision:
            self.apply(await asyncio.to_thread(self.store.configs))
            self._revision = revision
        if self.clock() - self._last_flush >= self.flush_s:
            self._last_flush = self.clock()
            await self.flush()

    async def run(self, poll_s: float) -> None:
        """Tick now and every ``poll_s`` until cancelled (then call :meth:`close`)."""
        outage = OutageLog(logger, "shadow configs not refreshed or flushed")
        while True:
            try:
                await self.tick()
                outage.ok()
            except RegistryUnavailable as err:
                outage.failed(err.message)
            except Exception:
                logger.exception("shadow refresh or flush failed")
            await asyncio.sleep(poll_s)

    async def close(self) -> None:
        """Stop the consumers and flush once more (queued copies are dropped, and counted)."""
        for target in list(self.targets.values()):
            self._retire(target)
        self.targets = {}
        try:
            await self.flush()
        except Exception:
            logger.exception("last shadow flush failed; up to %.0f s of agreement lost",
                             self.flush_s)  # fmt: skip
