"""Rate limits in tokens per minute for generative models, per API key and per model.

A request reserves what it could cost at admission, its prompt tokens plus ``max_tokens`` for
each choice, from the bucket of its API key and the bucket of its model; when it ends, the
reservation is settled with the tokens it really used (prompt + completion), giving back what
it did not generate. A request that does not fit waits: 429 with the seconds until the bucket
holds enough. One that could never fit (more than a minute's budget) is a 400 naming
``max_tokens``, as waiting would not help.

Each bucket holds at most one minute's tokens and refills continuously; the clock is injected,
so tests need no sleeps. The buckets live on the event loop's thread (no lock).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from inferd.errors import InvalidInput, RateLimited
from inferd.security.limits import Clock

_MAX_BUCKETS = 100_000


class TokensExhausted(RateLimited):
    """A token budget lacks the tokens a request needs now (429 with Retry-After).

    Args:
        what: the budget, e.g. ``API key k`` or ``model 'm'``.
        budget: ``key`` or ``model``.
        per_minute: the budget's tokens per minute.
        needed: the tokens the request reserves.
        left: the tokens in the bucket now.
        retry_after_s: whole seconds until they are.
    """

    def __init__(self, what: str, budget: str, per_minute: int, needed: int, left: int,
                 retry_after_s: int) -> None:  # fmt: skip
        super().__init__(f"{what}: {per_minute} tokens per minute exceeded (this request "
                         f"needs {needed}, {left} left)", retry_after_s)  # fmt: skip
        self.budget = budget


class TokenBucket:
    """Tokens per minute for one name, refilled continuously, at most a minute's worth.

    Args:
        per_minute: tokens a minute (> 0).
        now: the clock reading it starts full at.
    """

    def __init__(self, per_minute: int, now: float) -> None:
        self.per_minute = per_minute
        self.tokens = float(per_minute)
        self.last = now

    def refill(self, now: float) -> None:
        rate = self.per_minute / 60.0
        self.tokens = min(float(self.per_minute), self.tokens + (now - self.last) * rate)
        self.last = now

    def wait_for(self, amount: int) -> int:
        """Whole seconds until ``amount`` tokens are in the bucket (0: there now)."""
        missing = amount - self.tokens
        return 0 if missing <= 0 else max(1, math.ceil(missing * 60.0 / self.per_minute))


@dataclass
class Reservation:
    """Tokens taken from some buckets for one request; :meth:`TokenLimits.settle` corrects
    them with the tokens really used."""

    amount: int
    buckets: list[TokenBucket] = field(default_factory=list)
    settled: bool = False


class TokenLimits:
    """Token budgets per API key and per model.

    Args:
        key_per_minute: tokens a minute per API key; 0: no key budget.
        model_per_minute: tokens a minute per model (all callers together); 0: none.
        clock: monotonic seconds.
    """

    def __init__(
        self, key_per_minute: int = 0, model_per_minute: int = 0, clock: Clock = time.monotonic
    ) -> None:
        self.key_per_minute = key_per_minute
        self.model_per_minute = model_per_minute
        self.clock = clock
        self._keys: dict[str, TokenBucket] = {}
        self._models: dict[str, TokenBucket] = {}

    def reserve(self, key: str | None, model: str, amount: int,
                model_per_minute: int | None = None) -> Reservation:  # fmt: skip
        """Take ``amount`` tokens from the key's and the model's buckets, or neither.

        Args:
            key: the API key id; None (auth off) skips the key budget.
            model: the model name.
            amount: prompt tokens + max_tokens * choices.
            model_per_minute: this model's own budget (model.yaml), else the server's.

        Raises:
            TokensExhausted: a bucket lacks the tokens now (429, Retry-After: until it has).
            InvalidInput: the request is larger than a bucket can ever hold.
        """
        now = self.clock()
        wanted: list[tuple[str, str, TokenBucket]] = []
        if key is not None and self.key_per_minute > 0:
            bucket = _bucket(self._keys, key, self.key_per_minute, now)
            wanted.append((f"API key {key}", "key", bucket))
        per_model = self.model_per_minute if model_per_minute is None else model_per_minute
        if per_model > 0:
            bucket = _bucket(self._models, model, per_model, now)
            wanted.append((f"model '{model}'", "model", bucket))
        for what, budget, bucket in wanted:
            bucket.refill(now)
            if amount > bucket.per_minute:
                raise InvalidInput(
                    "max_tokens", f"prompt + max_tokens * choices within the {what} budget of "
                    f"{bucket.per_minute} tokens per minute", f"{amount} tokens",
                )  # fmt: skip
            wait = bucket.wait_for(amount)
            if wait:
                raise TokensExhausted(what, budget, bucket.per_minute, amount,
                                      int(bucket.tokens), wait)  # fmt: skip
        for _, _, bucket in wanted:
            bucket.tokens -= amount
        return Reservation(amount, [b for _, _, b in wanted])

    def settle(self, reservation: Reservation, used: int) -> None:
        """Correct a reservation with the tokens really used (once; later calls do nothing)."""
        if reservation.settled:
            return
        reservation.settled = True
        now = self.clock()
        for bucket in reservation.buckets:
            bucket.refill(now)
            # Giving back may not overfill; using more than reserved may go below zero.
            bucket.tokens = min(float(bucket.per_minute),
                                bucket.tokens + reservation.amount - used)  # fmt: skip


def _bucket(buckets: dict[str, TokenBucket], name: str, per_minute: int,
            now: float) -> TokenBucket:  # fmt: skip
    bucket = buckets.get(name)
    if bucket is None or bucket.per_minute != per_minute:  # new, or its limit changed
        if len(buckets) >= _MAX_BUCKETS:
            _prune(buckets, now)
        bucket = buckets[name] = TokenBucket(per_minute, now)
    return bucket


def _prune(buckets: dict[str, TokenBucket], now: float) -> None:
    """Forget buckets that have been full for a while (a full bucket is a new bucket)."""
    for name, bucket in list(buckets.items()):
        if now - bucket.last >= 60.0:
            del buckets[name]
    if len(buckets) >= _MAX_BUCKETS:
        buckets.clear()
