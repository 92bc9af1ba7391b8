"""A mergeable per-variant aggregate: moments, conversions and a bounded reservoir.

Each serving process keeps one :class:`Aggregate` per (experiment, variant, metric), adds to
it on the request path (a few float additions and, once the reservoir is full, one random
draw), and flushes :meth:`Aggregate.to_dict` to the registry every few seconds. Results
rebuild them with :meth:`Aggregate.from_dict` and combine them with :meth:`Aggregate.merge`:

- count, sum, sum of squares and conversions add, so the merged moments are those of all
  the data together (up to float rounding in the order of the additions);
- the reservoirs (each a uniform sample without replacement of its own stream, Algorithm R)
  merge into a uniform sample of the union: how many come from each side is drawn from the
  hypergeometric law of the two stream sizes, then that many are picked from each side.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from inferd.stats.means import Moments
from inferd.stats.proportions import Rate

RESERVOIR_CAPACITY = 1_000
_FIELDS = ("count", "total", "total_sq", "conversions", "capacity", "reservoir")


class Aggregate:
    """Observations of one variant: count, sum, sum of squares, conversions, a reservoir.

    Args:
        capacity: the reservoir's size (at least 1).
        seed: seeds the reservoir's random choices, for reproducible tests.
    """

    __slots__ = ("_rng", "capacity", "conversions", "count", "reservoir", "total", "total_sq")

    def __init__(self, capacity: int = RESERVOIR_CAPACITY, seed: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: expected a reservoir size >= 1, got {capacity}")
        self.capacity = capacity
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.conversions = 0
        self.reservoir: list[float] = []
        self._rng = random.Random(seed)

    def add(self, value: float, converted: bool = False) -> None:
        """Count one observation (its value, and whether it converted)."""
        self.count += 1
        self.total += value
        self.total_sq += value * value
        if converted:
            self.conversions += 1
        if len(self.reservoir) < self.capacity:
            self.reservoir.append(value)
        else:  # Algorithm R: each value so far stays in the reservoir with equal chance
            # random() * count: uniform on 0..count-1 (count << 2**53) at a third of
            # randrange's cost; add() runs once per request an experiment routes.
            slot = int(self._rng.random() * self.count)
            if slot < self.capacity:
                self.reservoir[slot] = value

    def extend(self, values: Iterable[float], converted: Iterable[bool] | None = None) -> None:
        """Add many observations; ``converted`` (same length) defaults to none converted."""
        numbers = [float(value) for value in values]
        flags = [False] * len(numbers) if converted is None else [bool(c) for c in converted]
        if len(flags) != len(numbers):
            raise ValueError(
                f"converted: expected one flag per value ({len(numbers)}), got {len(flags)}"
            )
        for value, flag in zip(numbers, flags, strict=True):
            self.add(value, flag)

    def add_many(self, values: Sequence[float]) -> None:
        """Count many observations, none converted, as :meth:`add` would one by one (the
        same Algorithm R, its draws and the sums vectorized). The serving path appends
        latencies to a list and folds it in here about once a second
        (:meth:`inferd.traffic.policy.TrafficPolicy.fold`): a list append per request
        costs a fraction of an :meth:`add`."""
        n = len(values)
        if n == 0:
            return
        data = np.asarray(values, dtype=np.float64)
        seen = self.count
        self.count += n
        self.total += float(data.sum())
        self.total_sq += float(np.dot(data, data))
        reservoir, capacity = self.reservoir, self.capacity
        room = min(capacity - len(reservoir), n)
        if room > 0:  # the reservoir fills first, as add() fills it
            reservoir.extend(data[:room].tolist())
            seen += room
            data = data[room:]
        if not data.size:
            return
        # Observation number k (1-based) lands in slot floor(u * k) when that is below the
        # capacity, u uniform on [0, 1): add()'s draw, for all of them at once.
        rng = np.random.default_rng(self._rng.getrandbits(64))
        numbers = np.arange(seen + 1, seen + 1 + data.size, dtype=np.float64)
        slots = (rng.random(data.size) * numbers).astype(np.int64)
        kept = np.flatnonzero(slots < capacity)
        for index in kept.tolist():  # in stream order: a later value replaces an earlier one
            reservoir[int(slots[index])] = float(data[index])

    def moments(self) -> Moments:
        """Count, sum and sum of squares, for :func:`inferd.stats.welch`."""
        return Moments(self.count, self.total, self.total_sq)

    def rate(self) -> Rate:
        """Conversions out of observations, for :func:`inferd.stats.two_proportions`."""
        return Rate(self.conversions, self.count)

    def merge(self, other: Aggregate) -> Aggregate:
        """A new aggregate of both: moments added, reservoirs merged uniformly.

        The result's capacity is the smaller of the two (a uniform sample of the union cannot
        be larger than the smaller reservoir allows); it draws from this aggregate's RNG.
        """
        merged = Aggregate(min(self.capacity, other.capacity))
        merged._rng = self._rng
        merged.count = self.count + other.count
        merged.total = self.total + other.total
        merged.total_sq = self.total_sq + other.total_sq
        merged.conversions = self.conversions + other.conversions
        size = min(merged.capacity, merged.count)
        # Positions in the union of both streams; those below self.count fall on this side.
        from_self = sum(1 for i in self._rng.sample(range(merged.count), size) if i < self.count)
        from_other = size - from_self
        merged.reservoir = self._rng.sample(self.reservoir, from_self) + self._rng.sample(
            other.reservoir, from_other
        )
        return merged

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the registry flush); :meth:`from_dict` reads it back."""
        return {
            "count": self.count,
            "total": self.total,
            "total_sq": self.total_sq,
            "conversions": self.conversions,
            "capacity": self.capacity,
            "reservoir": list(self.reservoir),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], seed: int | None = None) -> Aggregate:
        """Rebuild an aggregate from :meth:`to_dict`'s output.

        Raises:
            ValueError: a field missing or inconsistent (named in the message).
        """
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ValueError(f"aggregate: expected fields {list(_FIELDS)}, missing {missing}")
        aggregate = cls(int(data["capacity"]), seed)
        aggregate.count = int(data["count"])
        aggregate.total = float(data["total"])
        aggregate.total_sq = float(data["total_sq"])
        aggregate.conversions = int(data["conversions"])
        aggregate.reservoir = [float(x) for x in data["reservoir"]]
        expected = min(aggregate.count, aggregate.capacity)
        if len(aggregate.reservoir) != expected:
            raise ValueError(
                f"aggregate.reservoir: expected min(count, capacity) = {expected} values, "
                f"got {len(aggregate.reservoir)}"
            )
        if not 0 <= aggregate.conversions <= aggregate.count:
            raise ValueError(
                f"aggregate.conversions: expected 0..count ({aggregate.count}), "
                f"got {aggregate.conversions}"
            )
        return aggregate
