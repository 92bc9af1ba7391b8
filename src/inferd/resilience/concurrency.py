"""An adaptive concurrency limit: how many requests one model version may hold at once.

The idea is the gradient controller of Netflix's concurrency-limits and Envoy's adaptive
concurrency filter: compare the latency requests get now with the latency they would get with
no load, and scale the limit by that ratio. What differs is the no-load value. Those limiters
take the smallest latency seen in a long window; under dynamic batching that is the latency of
a one-row batch, while a saturated model runs full batches that are slower per call and far
faster per row, so a minimum would hold the limit below what fills a batch. Here each sample
brings its own no-load value: its latency less the time it waited in the batcher's queue
(the time it asked to wait for company, ``max_queue_delay_ms``, stays in). The ratio

    gradient = tolerance * mean(no-load latency) / mean(latency)     over one window

is then about waiting only: with ``tolerance`` 2 a request may wait about as long as its own
batch runs (the batch ahead of it), and no longer.

Every window (``window_ms``, on an injectable clock) in which requests completed:

- latency within tolerance (gradient >= 1) and the limit was used (at least half of it in
  flight at some point): grow by sqrt(limit), the queue the limit should allow for;
- latency over tolerance: shrink to ``limit * gradient`` (never below half in one window);
- the new value is smoothed (``SMOOTHING``) and kept within [min_limit, max_limit].

A window in which the limit was not used teaches nothing and leaves it alone, so a quiet
model keeps its limit rather than drifting up without evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# Share of a window's new value taken into the limit: smooths noise without making a 2x
# overload wait more than a few windows to be answered.
SMOOTHING = 0.5
MIN_GRADIENT = 0.5


@dataclass(frozen=True, slots=True)
class LimitBounds:
    """What one limiter is allowed to do.

    Attributes:
        initial: the limit before the first window.
        low: the smallest limit (a full batch for every instance keeps throughput).
        high: the largest limit.
        tolerance: latency / no-load latency at which the limit stops growing.
        window_s: seconds of samples per update.
    """

    initial: int
    low: int
    high: int
    tolerance: float = 2.0
    window_s: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"expected 1 <= min_limit <= max_limit, got {self.low}, {self.high}")
        if self.tolerance <= 1:
            raise ValueError(f"expected tolerance > 1, got {self.tolerance}")
        if self.window_s <= 0:
            raise ValueError(f"expected window_ms > 0, got {self.window_s * 1000}")


class AdaptiveLimit:
    """The limit of one version, fed one sample per completed request.

    Args:
        bounds: initial value, range, tolerance and window.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, bounds: LimitBounds, clock: Callable[[], float]) -> None:
        self.bounds = bounds
        self._clock = clock
        self._value = float(min(max(bounds.initial, bounds.low), bounds.high))
        self.limit = round(self._value)
        self.latency_s = 0.0  # smoothed mean latency of the last windows
        self.no_load_s = 0.0  # smoothed mean no-load latency of the last windows
        self._window_end = clock() + bounds.window_s
        self._count = 0
        self._latency_sum = 0.0
        self._no_load_sum = 0.0
        self._peak = 0

    def sample(self, latency_s: float, queued_s: float) -> bool:
        """Record one completed request; True when the limit was recomputed.

        Args:
            latency_s: the request's time from admission to its answer.
            queued_s: the part of it spent waiting for a runtime instance (not counting
                the wait for company the model asks for).
        """
        self._count += 1
        self._latency_sum += latency_s
        self._no_load_sum += max(latency_s - queued_s, 0.0)
        now = self._clock()
        if now < self._window_end:
            return False
        self._update()
        self._window_end = now + self.bounds.window_s
        return True

    def used(self, in_flight: int) -> None:
        """Note the requests held now (admissions call it, so an idle window is told apart)."""
        if in_flight > self._peak:
            self._peak = in_flight

    def throughput(self) -> float:
        """Requests per second the version answers at the current limit (Little's law)."""
        if self.latency_s <= 0:
            return math.inf
        return self.limit / self.latency_s

    def _update(self) -> None:
        count, latency, no_load = self._count, self._latency_sum, self._no_load_sum
        peak = self._peak
        self._count, self._latency_sum, self._no_load_sum, self._peak = 0, 0.0, 0.0, 0
        mean, base = latency / count, no_load / count
        first = self.latency_s == 0.0
        self.latency_s = mean if first else (self.latency_s + mean) / 2
        self.no_load_s = base if first else (self.no_load_s + base) / 2
        if mean <= 0:
            return
        gradient = self.bounds.tolerance * base / mean
        if gradient >= 1.0:
            if peak * 2 < self.limit:
                return  # the limit was not what held requests back: no evidence to grow
            target = self._value + math.sqrt(self._value)
        else:
            target = self._value * max(gradient, MIN_GRADIENT)
        value = self._value + SMOOTHING * (target - self._value)
        self._value = min(max(value, float(self.bounds.low)), float(self.bounds.high))
        self.limit = max(round(self._value), 1)
