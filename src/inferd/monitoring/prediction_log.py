"""The prediction log: sampled requests with their answers, written as Parquet in the
background (docs/prediction-log.md).

    DataPlane.infer ── offer(config, request, response): the sampling decision (one
                       random() against the model's rate) and an append to a bounded list;
                       a full list drops the request from the log, counted
    run()           on the event loop: every ``flush_s``, or sooner once ``batch_requests``
                    wait, swaps the list out and writes it in a worker thread
                    (prediction_log_writer: one Parquet file per partition per flush)
    close()         the last flush, at shutdown, once no request runs

Nothing here can fail a request: ``offer`` only appends, and whatever goes wrong later (a
full disk, a sink that raises, a tensor Arrow cannot hold) drops that flush's requests,
counted in ``inferd_prediction_log_dropped_total{reason}`` and logged at most once per
``warn_every_s`` per reason. A failed flush is not retried: retrying would let memory grow
while the sink is away, and the log is a sample already.

Each process (``--workers N``, replicas) writes its own files; nothing is shared but the
folder. The rate of a model is ``prediction_log_rate`` in its ``model.yaml`` (stored with the
version in the registry), else the server's ``--prediction-log-rate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter

from inferd.config import ModelConfig
from inferd.types import InferenceRequest, InferenceResponse

if TYPE_CHECKING:  # pyarrow is the jobs extra: imported only once a log is configured
    from inferd.monitoring.prediction_log_writer import ParquetSink

logger = logging.getLogger(__name__)

MAX_PENDING = 20_000  # sampled requests held between two flushes
MAX_PENDING_BYTES = 256 << 20  # and their tensors' bytes (a reference keeps them alive)
BATCH_REQUESTS = 5_000  # a flush starts early once this many wait
FLUSH_S = 30.0
WARN_EVERY_S = 60.0
REASONS = ("queue_full", "disk_full", "sink_error", "encode_error")
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


@dataclass(frozen=True, slots=True)
class Entry:
    """One sampled request: what the request path hands over, referenced, never copied."""

    at: float  # time.time() when the answer was made
    request: InferenceRequest
    response: InferenceResponse


class PredictionLog:
    """One process's prediction log.

    Args:
        sink: where files go (a :class:`~inferd.monitoring.prediction_log_writer.ParquetSink`).
        rate: the share of requests logged for models whose config names no rate.
        registry: the metrics registry the ``inferd_prediction_log_*`` counters join.
        max_pending: sampled requests held at most between two flushes.
        max_pending_bytes: their tensors' bytes at most; a flush starts at a quarter of it.
        batch_requests: a flush starts before ``flush_s`` once this many wait.
        flush_s: seconds between flushes.
        seed: seeds the sampling decisions (tests).
        clock: monotonic seconds, for the once-per-interval warnings.
    """

    def __init__(
        self, sink: ParquetSink, rate: float, registry: CollectorRegistry, *,
        max_pending: int = MAX_PENDING, max_pending_bytes: int = MAX_PENDING_BYTES,
        batch_requests: int = BATCH_REQUESTS,
        flush_s: float = FLUSH_S, warn_every_s: float = WARN_EVERY_S, seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"prediction_log_rate: expected a share in [0, 1], got {rate}")
        self.sink = sink
        self.rate = rate
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.batch_requests = min(batch_requests, max_pending)
        self._pending_bytes = 0
        self.flush_s = flush_s
        self.warn_every_s = warn_every_s
        self._random = random.Random(seed).random
        self._clock = clock
        self._pending: list[Entry] = []
        self._wake = asyncio.Event()
        self._writing: asyncio.Future[None] | None = None
        self.dropped = dict.fromkeys(REASONS, 0)  # this process's counts, by reason
        self.written = 0
        self._warned: dict[str, tuple[float, int]] = {}  # reason -> (when, count then)
        self._last_error: dict[str, str] = {}  # reason -> the latest error, for the warning
        self._dropped_metric = Counter(
            "inferd_prediction_log_dropped", "Sampled requests left out of the prediction log, "
            "by reason: queue_full, disk_full, sink_error, encode_error.",
            ["reason"], registry=registry,
        )  # fmt: skip
        self._written_metric = Counter(
            "inferd_prediction_log_written",
            "Sampled requests written to the prediction log.",
            registry=registry,
        )
        self._queue_full = self._dropped_metric.labels(reason="queue_full")

    def offer(
        self, config: ModelConfig, request: InferenceRequest, response: InferenceResponse
    ) -> None:
        """The request path's one call: sample, then keep a reference (never raises)."""
        rate = config.prediction_log_rate
        if rate is None:
            rate = self.rate
        if rate < 1.0 and self._random() >= rate:
            return
        pending = self._pending
        size = _nbytes(request.inputs) + _nbytes(response.outputs)
        held = self._pending_bytes + size
        if len(pending) >= self.max_pending or held > self.max_pending_bytes:
            self.dropped["queue_full"] += 1
            self._queue_full.inc()
            return
        pending.append(Entry(time.time(), request, response))
        self._pending_bytes = held
        if len(pending) >= self.batch_requests or 4 * held >= self.max_pending_bytes:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Sampled requests waiting for the next flush."""
        return len(self._pending)

    async def run(self) -> None:
        """Flush every ``flush_s``, or sooner when a batch is full, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the log must outlive any one flush
                logger.exception("prediction log: flush failed")

    async def flush(self) -> None:
        """Write what waits, in a worker thread; one write at a time."""
        if self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)
        entries, self._pending, self._pending_bytes = self._pending, [], 0
        if entries:
            # Shielded: a cancelled loop task must not orphan a write halfway (close waits).
            self._writing = asyncio.ensure_future(asyncio.to_thread(self.write, entries))
            await asyncio.shield(self._writing)
        self._warn()

    async def close(self) -> None:
        """The last flush, once no request runs (shutdown)."""
        if self._writing is not None and not self._writing.done():
            await asyncio.wait([self._writing])
        await self.flush()

    def write(self, entries: list[Entry]) -> None:
        """Write entries now (blocking); failures are counted and logged, never raised."""
        from inferd.monitoring.prediction_log_writer import tables

        try:
            by_partition = tables(entries)
        except Exception as err:
            logger.debug("prediction log: encoding failed", exc_info=True)
            self._drop("encode_error", len(entries), err)
            return
        for partition, parts in by_partition.items():
            for table, requests in parts:
                try:
                    self.sink.write(partition, table)
                except Exception as err:
                    reason = "disk_full" if _is_disk_full(err) else "sink_error"
                    logger.debug("prediction log: write failed", exc_info=True)
                    self._drop(reason, requests, err)
                    continue
                self.written += requests
                self._written_metric.inc(requests)

    def _drop(self, reason: str, requests: int, err: BaseException | None = None) -> None:
        self.dropped[reason] += requests
        if err is not None:
            self._last_error[reason] = f"{type(err).__name__}: {err}"
        self._dropped_metric.labels(reason=reason).inc(requests)

    def _warn(self) -> None:
        """Log each reason's drops at most once per ``warn_every_s``."""
        now = self._clock()
        for reason, count in self.dropped.items():
            when, before = self._warned.get(reason, (-float("inf"), 0))
            if count > before and now - when >= self.warn_every_s:
                logger.warning(
                    "prediction log: %d sampled requests dropped (%s%s) since the last "
                    "warning; requests are answered as usual (inferd_prediction_log_dropped_total)",
                    count - before, reason, _detail(self._last_error.get(reason)),
                )  # fmt: skip
                self._warned[reason] = (now, count)


def _detail(error: str | None) -> str:
    return "" if error is None else f", the latest: {error}"


def _nbytes(tensors: Mapping[str, Any]) -> int:
    return sum(getattr(a, "nbytes", 0) for a in tensors.values())


def _is_disk_full(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:  # fsspec and pyarrow may wrap the OSError
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def prediction_log_from_settings(
    uri: str | None, rate: float, registry: CollectorRegistry, flush_s: float = FLUSH_S
) -> PredictionLog | None:
    """The server's log, or None when no URI is configured (the default: off)."""
    if not uri:
        return None
    try:
        from inferd.monitoring.prediction_log_writer import ParquetSink
    except ImportError as err:
        raise RuntimeError(
            "prediction_log_uri: the prediction log needs pyarrow; install inferd[jobs]"
        ) from err
    return PredictionLog(ParquetSink(uri), rate, registry, flush_s=flush_s)
