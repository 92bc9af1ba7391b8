"""Shadow traffic: a sampled copy of a model's requests, run on another version afterwards.

    ShadowMirror ── targets: model -> _Target (config, bounded list of copies, one consumer)
         │    offer(): after the primary's response is made, on the request path: a bucket
         │             test on the request id and an append (dropped and counted if full)
         │    consumer: lets a group gather (GATHER_S), runs it on the shadow version as one
         │             call (packed into batches, the batcher's background priority), then
         │             compares each copy with the primary's outputs (:mod:`.agreement`)
         └── run(): refresh the configs when the registry revision moves; every ``flush_s``
                    upsert this process's cumulative agreement per version pair

Nothing the shadow does reaches the client: the response is complete before ``offer`` is
called, the consumer runs as its own task, and a shadow failure is counted and logged only.
Sampling is deterministic per request id (a salted CRC-32 into 10,000 buckets), so every worker
and replica mirrors the same requests; a request without an id is sampled by a low-discrepancy
counter, which keeps the configured fraction exact.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from inferd.errors import InferdError, QueueFull
from inferd.registry.outage import OutageLog, poll
from inferd.traffic.agreement import Agreement, Comparison, Layout, compare, compare_group, layout
from inferd.traffic.router import BUCKETS
from inferd.traffic.shadow_config import ShadowConfig
from inferd.types import InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

MAX_GROUP = 256  # copies run as one call to the runner (which packs them into batches)
GATHER_S = 0.05  # how long a group gathers: copies wait, clients never do
_GOLDEN = 0.6180339887498949  # the counter sampler's step (frac(n * phi) spreads evenly)
Outputs = dict[str, np.ndarray]
# Runs copies on the named version at background priority and returns each one's outputs or
# error, in order (the data plane provides it).
Runner = Callable[[list[InferenceRequest], str], Awaitable[list[Outputs | Exception]]]
Pair = tuple[str, str, str]  # model, primary version, shadow version


class ShadowObserver(Protocol):
    """Where each shadow event goes besides the per-pair sums (Prometheus metrics)."""

    def dropped(self, pair: Pair) -> None: ...
    def answered(
        self, pair: Pair, result: str, comparison: Any, seconds: float, count: int
    ) -> None: ...
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
    """One model's shadow: its config, sample threshold, waiting copies and consumer."""

    def __init__(self, config: ShadowConfig) -> None:
        self.config = config
        self.version = str(config.version)
        self.threshold = round(config.fraction * BUCKETS)
        # CRC-32 continued from the salt's: deterministic in every process, uniform enough for
        # a sample (tested), and a quarter of the experiments' BLAKE2b on every request.
        self.salt = zlib.crc32(f"shadow/{config.model}\x1f".encode())
        # Copies waiting, oldest first: a list, not an asyncio.Queue, so a copy costs one
        # append and a group one slice (the consumer runs rarely, and its code runs cold).
        self.waiting: list[_Item] = []
        self.wakeup: asyncio.Future[None] | None = None  # the idle consumer waits on it
        self.settled: asyncio.Event | None = None  # set while nothing waits or runs
        self.task: asyncio.Task[None] | None = None
        self.counter = 0

    def sampled(self, request_id: str | None) -> bool:
        if request_id is None:
            self.counter += 1
            return (self.counter * _GOLDEN) % 1.0 < self.config.fraction
        return zlib.crc32(request_id.encode(), self.salt) % BUCKETS < self.threshold


class ShadowMirror:
    """Mirrors sampled requests to shadow versions and tallies agreement, in one process.

    Args:
        store: configs and agreement rows; None keeps everything in memory (tests, tools).
        observer: metrics to update; None for none.
        clock: seconds since the epoch, for flushes.
        flush_s: how often the agreement sums are written to the registry.
        source: this process's name in the aggregate rows.
        gather_s: how long a group of copies gathers before it runs (0: run what is queued).
    """

    def __init__(
        self, store: ShadowSource | None = None, *, observer: ShadowObserver | None = None,
        clock: Callable[[], float] = time.time, flush_s: float = 5.0, source: str | None = None,
        gather_s: float = GATHER_S,
    ) -> None:  # fmt: skip
        self.store = store
        self.observer = observer
        self.clock = clock
        self.flush_s = flush_s
        self.gather_s = gather_s
        self.source = source or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.targets: dict[str, _Target] = {}
        self.pairs: dict[Pair, Agreement] = {}
        self.runner: Runner | None = None
        self._flushed: dict[Pair, int] = {}
        self._revision = -1
        self._last_flush = clock()

    # -- the request path --------------------------------------------------------------------

    def offer(self, request: InferenceRequest, response: InferenceResponse) -> None:
        """Keep a copy of an answered request for its model's shadow, if sampled."""
        target = self.targets.get(request.model_name)
        if target is None or response.model_version == target.version or self.runner is None:
            return
        if not target.sampled(request.id):
            return
        waiting = target.waiting
        if len(waiting) >= target.config.queue_size:
            pair = (request.model_name, response.model_version, target.version)
            self._agreement(pair).drop()
            if self.observer is not None:
                self.observer.dropped(pair)
            return
        waiting.append(_Item(request, response.outputs, response.model_version,
                             response.latency_ms))  # fmt: skip
        if target.task is None:
            target.settled = asyncio.Event()
            target.task = asyncio.get_running_loop().create_task(self._consume(target))
        elif target.wakeup is not None:
            target.wakeup.set_result(None)
            target.wakeup = None
        if target.settled is not None and target.settled.is_set():
            target.settled.clear()

    # -- the consumer ------------------------------------------------------------------------

    async def _consume(self, target: _Target) -> None:
        waiting = target.waiting
        loop = asyncio.get_running_loop()
        while True:
            if not waiting:
                if target.settled is not None:
                    target.settled.set()
                target.wakeup = loop.create_future()
                await target.wakeup
            if self.gather_s > 0 and len(waiting) < MAX_GROUP:
                # Let a group gather: copies arrive one by one, and run best together. A copy
                # still waiting when the shadow is removed is dropped (and counted) by _retire.
                await asyncio.sleep(self.gather_s)
            items = waiting[:MAX_GROUP]
            del waiting[:MAX_GROUP]
            if self.observer is not None:
                self.observer.queue_depth(target.config.model, len(waiting))
            await self._mirror(target, items)

    async def _mirror(self, target: _Target, items: list[_Item]) -> None:
        """Run a group of copies on the shadow version as one call, then count each."""
        version = target.version
        model = target.config.model
        for primary, count in Counter(item.primary for item in items).items():
            self._agreement((model, primary, version)).take(count)
        # The clients' requests as they are: the runner is told the version, and the batcher's
        # background class replaces their priority and deadline.
        requests = [item.request for item in items]
        start = time.perf_counter()
        results: list[Outputs | Exception]
        try:
            results = await self._run(requests, version)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the version is missing, not ready...: every copy failed
            results = [err] * len(items)
        seconds = time.perf_counter() - start
        failures: dict[str, int] = {}
        together: dict[tuple[Pair, Layout], list[tuple[_Item, Outputs]]] = {}
        for item, result in zip(items, results, strict=True):
            pair = (model, item.primary, version)
            if isinstance(result, QueueFull):  # saturated, or shed by overload control
                self._agreement(pair).drop(taken=True)
                if self.observer is not None:
                    self.observer.dropped(pair)
            elif isinstance(result, Exception):  # never the client's: count it, log it
                self._agreement(pair).fail()
                self._observe(pair, "failed", None, seconds, 1)
                detail = result.message if isinstance(result, InferdError) else repr(result)
                failures[detail] = failures.get(detail, 0) + 1
            else:
                shape = layout(item.outputs, result)
                if shape is None:  # compared alone
                    self._count(pair, compare(item.outputs, result), [item.primary_ms], seconds)
                else:
                    together.setdefault((pair, shape), []).append((item, result))
        for (pair, _), members in together.items():  # one comparison per pair and layout
            comparison = compare_group([i.outputs for i, _ in members], [r for _, r in members])
            self._count(pair, comparison, [i.primary_ms for i, _ in members], seconds)
        for detail, count in failures.items():  # one line per cause and group, not per copy
            logger.warning("shadow %s version %s: %d of %d copies failed: %s",
                           model, version, count, len(items), detail)  # fmt: skip

    async def _run(
        self, requests: list[InferenceRequest], version: str
    ) -> list[Outputs | Exception]:
        if self.runner is None:
            raise RuntimeError("no shadow runner bound (the data plane binds one)")
        results = await self.runner(requests, version)
        if len(results) != len(requests):
            raise RuntimeError(
                f"the shadow runner answered {len(results)} of {len(requests)} copies"
            )
        return results

    def _discard(self, target: _Target, items: list[_Item]) -> None:
        for item in items:
            self._agreement((target.config.model, item.primary, target.version)).drop()

    def _count(
        self, pair: Pair, comparison: Comparison, primary_ms: list[float], seconds: float
    ) -> None:
        self._agreement(pair).add_group(comparison, primary_ms, seconds * 1000.0)
        result = "compared" if comparison.comparable else "incomparable"
        self._observe(pair, result, comparison, seconds, len(primary_ms))

    def _observe(
        self, pair: Pair, result: str, comparison: Any, seconds: float, count: int
    ) -> None:
        if self.observer is None:
            return
        try:
            self.observer.answered(pair, result, comparison, seconds, count)
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
        self._discard(target, target.waiting)
        target.waiting.clear()

    async def idle(self) -> None:
        """Wait until every queued copy has been run and counted (tests, benchmarks)."""
        for target in list(self.targets.values()):
            if target.settled is not None:
                await target.settled.wait()

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
        await poll(self.tick, poll_s, outage, "shadow refresh or flush failed")

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
