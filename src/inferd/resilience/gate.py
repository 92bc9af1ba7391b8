"""The admission gate of one model version: its adaptive limit, who waits, who is shed.

A request enters at once while fewer than its class's share of the limit are held and nobody
of its class or a higher one waits. Otherwise shadow copies are shed; interactive and batch
requests wait in order (interactive first) when the expected wait, the requests ahead of them
over the rate the version answers at, fits in ``max_wait_ms`` and in their deadline, and are
shed with :class:`Overloaded` (503 / UNAVAILABLE, Retry-After) when it does not. An
interactive request that joins the line pushes out the newest batch requests whose expected
wait no longer fits.

Waiting is for bursts. Once a request was shed because the line was full, nobody else joins
the line for one limiter window (``window_ms``) after the last such refusal: under sustained
overload the line would otherwise stay full and add its whole wait to every answer, where
goodput needs no line at all (the limit alone keeps a batch forming). This is the
"controlled delay" idea of CoDel and of Facebook's adaptive queueing: a standing queue gets
a short wait target, here none.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from prometheus_client import Counter, Gauge

from inferd.errors import InferdError, QueueFull, RequestTimeout
from inferd.resilience.concurrency import AdaptiveLimit, LimitBounds
from inferd.resilience.config import OverloadConfig


class TrafficClass(IntEnum):
    """Who yields under pressure: the higher the value, the sooner."""

    INTERACTIVE = 0
    BATCH = 1
    SHADOW = 2


class Overloaded(QueueFull):
    """Overload control refused a request: the version is at its limit and the wait for a
    slot would be too long (a :class:`QueueFull`, so fallback chains and shadows treat it as
    one). 503 / UNAVAILABLE with Retry-After."""

    def __init__(self, model: str, version: str, why: str, retry_after_s: int) -> None:
        # QueueFull's own message speaks of max_queue_size; this one says what the gate saw.
        InferdError.__init__(
            self,
            f"model '{model}' version {version} is overloaded: {why}; request shed, retry "
            f"after {retry_after_s} s (or raise overload.max_wait_ms in model.yaml)",
        )
        self.retry_after_s = retry_after_s


class Gate:
    """Admission to one version (event loop only, so no locks).

    Args:
        model: model name, for errors and metrics.
        version: version label.
        config: the model's ``overload`` section.
        bounds: the limiter's range.
        clock: monotonic seconds.
        gauges: (limit, in flight, waiting) children of this version.
        shed: the shed counter of each class.
    """

    def __init__(
        self, model: str, version: str, config: OverloadConfig, bounds: LimitBounds,
        clock: Callable[[], float], gauges: tuple[Gauge, Gauge, Gauge],
        shed: dict[TrafficClass, Counter],
    ) -> None:  # fmt: skip
        self.model, self.version, self.config = model, version, config
        self.limiter = AdaptiveLimit(bounds, clock)
        self.in_flight = 0
        self._clock = clock
        self._limit_gauge, self._in_flight_gauge, self._waiting_gauge = gauges
        self._shed = shed
        self._full_at = -math.inf  # when a request was last shed for a full line
        self._lines: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())
        self._limit_gauge.set(self.limiter.limit)

    def cap(self, cls: TrafficClass) -> int:
        """How many requests may be held when one of ``cls`` enters."""
        limit = self.limiter.limit
        if cls is TrafficClass.INTERACTIVE:
            return limit
        share = self.config.batch_share if cls is TrafficClass.BATCH else self.config.shadow_share
        return max(int(limit * share), 1)

    def try_enter(self, cls: TrafficClass) -> bool:
        """Take a slot now if ``cls`` may; False when it would have to wait."""
        if self.in_flight >= self.cap(cls) or self._ahead(cls):
            return False
        self.in_flight += 1
        self.limiter.used(self.in_flight)
        self._in_flight_gauge.set(self.in_flight)
        return True

    async def wait(self, cls: TrafficClass, remaining_s: float | None) -> None:
        """Wait for a slot, or raise :class:`Overloaded` when the wait would not fit.

        Raises:
            Overloaded: a shadow copy, or an expected wait over ``max_wait_ms`` or the deadline.
            RequestTimeout: the deadline passed while waiting.
        """
        if cls is TrafficClass.SHADOW:
            raise self.shed(cls, "shadow copies never wait")
        expected = (self._ahead(cls) + 1) / self.limiter.throughput()
        allowed = self.max_wait_s()
        now = self._clock()
        if now - self._full_at < self.limiter.bounds.window_s:
            raise self.shed(cls, "the line was full moments ago: no waiting while overloaded")
        if allowed <= 0 or expected > allowed:  # 0: nothing measured yet, or no waiting asked
            self._full_at = now
            raise self.shed(
                cls,
                f"expected wait {expected * 1000:.1f} ms over the {allowed * 1000:.1f} ms allowed",
            )
        if remaining_s is not None and expected + self.limiter.no_load_s > remaining_s:
            raise self.shed(cls, f"the {remaining_s * 1000:.0f} ms left would not be enough")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._lines[cls]
        line.append(future)
        if cls is TrafficClass.INTERACTIVE:
            self._push_out_batch(allowed)
        self._waiting_gauge.set(self.waiting)
        waited = self._clock()
        try:
            await (future if remaining_s is None else asyncio.wait_for(future, remaining_s))
        except BaseException as err:
            self._give_up(future, line)
            if isinstance(err, TimeoutError):
                spent = (self._clock() - waited) * 1000.0
                where = "waiting for a slot under the concurrency limit"
                raise RequestTimeout(
                    self.model, self.version, spent, (remaining_s or 0) * 1000, where
                ) from None
            raise

    def leave(self, latency_s: float | None, queued_s: float = 0.0) -> None:
        """Give the slot back; ``latency_s`` None when the request taught nothing."""
        self.in_flight -= 1
        self._in_flight_gauge.set(self.in_flight)
        if latency_s is not None and self.limiter.sample(latency_s, queued_s):
            self._limit_gauge.set(self.limiter.limit)
        if self._lines[0] or self._lines[1]:
            self._grant()

    def shed(self, cls: TrafficClass, why: str) -> Overloaded:
        """Count a refusal of ``cls`` and build its error."""
        self._shed[cls].inc()
        limit, waiting = self.limiter.limit, self.waiting
        held = f"{self.in_flight} of {limit} requests in flight (adaptive limit"
        if cls is not TrafficClass.INTERACTIVE:
            held += f"; class {cls.name.lower()} may hold {self.cap(cls)}"
        drain = (waiting + 1) / self.limiter.throughput()
        retry = max(1, math.ceil(drain)) if math.isfinite(drain) else 1
        return Overloaded(self.model, self.version, f"{held}), {waiting} waiting, {why}", retry)

    @property
    def waiting(self) -> int:
        return len(self._lines[0]) + len(self._lines[1])

    def max_wait_s(self) -> float:
        """Longest expected wait allowed: ``max_wait_ms``, or one no-load latency."""
        configured = self.config.max_wait_ms
        return self.limiter.no_load_s if configured is None else configured / 1000.0

    def _ahead(self, cls: TrafficClass) -> int:
        if cls is TrafficClass.INTERACTIVE:
            return len(self._lines[0])
        return len(self._lines[0]) + len(self._lines[1])

    def _grant(self) -> None:
        for cls in (TrafficClass.INTERACTIVE, TrafficClass.BATCH):
            line = self._lines[cls]
            while line and self.in_flight < self.cap(cls):
                future = line.popleft()
                if future.done():  # gave up (deadline, client gone) or pushed out
                    continue
                self.in_flight += 1
                future.set_result(None)
        self.limiter.used(self.in_flight)
        self._in_flight_gauge.set(self.in_flight)
        self._waiting_gauge.set(self.waiting)

    def _push_out_batch(self, allowed_s: float) -> None:
        batch = self._lines[TrafficClass.BATCH]
        rate = self.limiter.throughput()
        while batch and self.waiting / rate > allowed_s:
            future = batch.pop()
            if not future.done():
                future.set_exception(self.shed(TrafficClass.BATCH, "an interactive request came"))

    def _give_up(self, future: asyncio.Future[None], line: deque[asyncio.Future[None]]) -> None:
        if future.done() and not future.cancelled() and future.exception() is None:
            self.leave(None)  # granted a slot just as it stopped waiting: hand it on
        else:
            future.cancel()
            with contextlib.suppress(ValueError):  # already taken off the line
                line.remove(future)
        self._waiting_gauge.set(self.waiting)
