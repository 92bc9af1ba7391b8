"""Circuit breaker of one model version.

CLOSED ──(error or slow rate over the window >= threshold, >= min_requests)──> OPEN
OPEN ──(open_s elapsed)──> HALF_OPEN: up to ``half_open_probes`` requests pass at once
HALF_OPEN ──(that many probes succeed)──> CLOSED     HALF_OPEN ──(a probe fails)──> OPEN
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from inferd.errors import InferdError
from inferd.resilience.config import BreakerConfig


class CircuitState(enum.IntEnum):
    """The value is what the ``inferd_circuit_state`` gauge shows."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitOpen(InferdError):
    """A version's circuit is open and the model has no fallback that answered."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, model: str, version: str, retry_after_s: float) -> None:
        super().__init__(
            f"model '{model}' version {version}: circuit open after repeated failures or slow "
            f"answers; retry after {retry_after_s:.0f} s or configure a fallback in model.yaml"
        )
        self.retry_after_s = max(1, round(retry_after_s))

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)}


class CircuitBreaker:
    """Decides whether a version takes a request, from its recent outcomes.

    Call :meth:`allow` before a request; then exactly one of :meth:`record` (it finished) or
    :meth:`release` (it was cancelled) for every allowed request.

    Args:
        config: thresholds.
        clock: monotonic seconds (injectable for tests).
        on_change: called with the new state on every transition.
    """

    def __init__(
        self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._outcomes: deque[tuple[float, bool, bool]] = deque()  # (time, failed, slow)
        self._failed = self._slow = 0  # sums over _outcomes, kept as it changes
        self._opened_at = 0.0
        self._probes_out = 0
        self._probes_ok = 0

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self.retry_after_s() <= 0:
            self._move(CircuitState.HALF_OPEN)
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until an open circuit probes recovery (0 when not open)."""
        if self._state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.config.open_s - self._clock())

    def allow(self) -> bool:
        """True if a request may go to the version now (a probe, when half-open)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and self._probes_out < self.config.half_open_probes:
            self._probes_out += 1
            return True
        return False

    def record(self, ok: bool, latency_s: float) -> None:
        """The outcome of an allowed request."""
        slow = self.config.slow_ms is not None and latency_s * 1000.0 > self.config.slow_ms
        if self._state is CircuitState.HALF_OPEN:
            self._probes_out = max(0, self._probes_out - 1)
            if not ok or slow:
                self._open()
                return
            self._probes_ok += 1
            if self._probes_ok >= self.config.half_open_probes:
                self._forget()
                self._move(CircuitState.CLOSED)
            return
        if self._state is CircuitState.OPEN:
            return  # a request admitted before it opened; the window restarts on closing
        now = self._clock()
        self._outcomes.append((now, not ok, slow))
        self._failed += not ok
        self._slow += slow
        self._trim(now)
        if self._tripped():
            self._open()

    def release(self) -> None:
        """An allowed request ended without an outcome (cancelled by its caller)."""
        if self._state is CircuitState.HALF_OPEN:
            self._probes_out = max(0, self._probes_out - 1)

    def _trim(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self._outcomes and self._outcomes[0][0] <= horizon:
            _, failed, slow = self._outcomes.popleft()
            self._failed -= failed
            self._slow -= slow

    def _tripped(self) -> bool:
        count = len(self._outcomes)
        if count < self.config.min_requests:
            return False
        if self._failed / count >= self.config.error_rate:
            return True
        return self.config.slow_ms is not None and self._slow / count >= self.config.slow_rate

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._forget()
        self._move(CircuitState.OPEN)

    def _forget(self) -> None:
        self._outcomes.clear()
        self._failed = self._slow = 0

    def _move(self, state: CircuitState) -> None:
        self._state = state
        self._probes_out = self._probes_ok = 0
        if self._on_change is not None:
            self._on_change(state)
