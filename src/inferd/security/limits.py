"""Rate limits (token buckets per key and per client address), concurrency per key, and
size limits on decoded requests.

Buckets refill continuously at ``rate`` tokens per second up to ``burst``; a request takes one
token or is refused with 429 and the seconds until a token is back. The clock is injected, so
tests need no sleeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from inferd.errors import RateLimited, RequestTooLarge
from inferd.types import InferenceRequest

Clock = Callable[[], float]
_MAX_BUCKETS = 100_000  # distinct addresses remembered before idle buckets are dropped


class RateLimiter:
    """Token buckets by name (an API key id or a client address).

    Args:
        rate: tokens per second; 0 turns the limiter off.
        burst: bucket size (the most requests at once after a quiet spell).
        what: how errors name the limited thing, e.g. ``"API key"``.
        clock: monotonic seconds.
    """

    def __init__(self, rate: float, burst: int, what: str, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.what = what
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, last refill time]

    def take(self, name: str) -> None:
        """Take a token for ``name``. Raises RateLimited with Retry-After when none is left."""
        now = self.clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._prune(now)
            self._buckets[name] = [self.burst - 1.0, now]
            return
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise RateLimited(
                f"{self.what} {name}: rate limit of {self.rate:g} requests/s exceeded",
                max(wait, 1),
            )
        bucket[0] = tokens - 1.0

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        for name, (_, last) in list(self._buckets.items()):
            if now - last >= full_after:
                del self._buckets[name]
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()  # under a flood of addresses, forget rather than grow


class Concurrency:
    """Requests in flight per API key, refused with 429 above ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}

    def acquire(self, name: str) -> None:
        """Raises RateLimited when ``name`` already has ``limit`` requests in flight."""
        running = self._running.get(name, 0)
        if running >= self.limit:
            raise RateLimited(
                f"API key {name}: {self.limit} requests already in flight "
                "(INFERD_MAX_CONCURRENT_PER_KEY)",
                1,
            )
        self._running[name] = running + 1

    def release(self, name: str) -> None:
        running = self._running.get(name, 0) - 1
        if running > 0:
            self._running[name] = running
        else:
            self._running.pop(name, None)

    def running(self, name: str) -> int:
        return self._running.get(name, 0)


class RequestLimits:
    """Size limits on a decoded inference request.

    Args:
        max_elements: largest element count of one input.
        max_rows: largest first dimension of one input.
        max_string_bytes: longest element of a BYTES input.
    """

    def __init__(self, max_elements: int, max_rows: int, max_string_bytes: int) -> None:
        self.max_elements = max_elements
        self.max_rows = max_rows
        self.max_string_bytes = max_string_bytes

    def check(self, request: InferenceRequest) -> None:
        """Raises RequestTooLarge (413) naming the input and the setting to raise."""
        for name, array in request.inputs.items():
            self.check_declared(name, array.shape, array.size)
            if array.dtype.kind in "OSU" and array.size:
                self._check_strings(name, array)

    def check_declared(self, name: str, shape: Sequence[int] | None, elements: int) -> None:
        """Check an input from its declared shape (or, with None, only its element count)
        before its data is parsed. Raises RequestTooLarge as :meth:`check` does."""
        if elements > self.max_elements:
            raise RequestTooLarge(
                f"input '{name}' elements", self.max_elements, elements,
                "INFERD_MAX_TENSOR_ELEMENTS",
            )  # fmt: skip
        if shape and shape[0] > self.max_rows:
            raise RequestTooLarge(
                f"input '{name}' rows", self.max_rows, shape[0], "INFERD_MAX_BATCH_ROWS"
            )

    def _check_strings(self, name: str, array: np.ndarray) -> None:
        if array.dtype.kind == "O":
            # None: a missing value of a row-wise /predict body (protocol/_instances.py)
            items = array.reshape(-1).tolist()
            longest = max((len(item) for item in items if item is not None), default=0)
        else:
            longest = array.dtype.itemsize // (4 if array.dtype.kind == "U" else 1)
        if longest > self.max_string_bytes:
            raise RequestTooLarge(
                f"input '{name}' string length", self.max_string_bytes, longest,
                "INFERD_MAX_STRING_BYTES",
            )  # fmt: skip
