"""Per-variant request aggregates kept in memory on the serving path and merged exactly.

A :class:`Tally` counts the requests a process routed to one variant: how many, how many
failed, the sum and sum of squares of their latency (enough for means, variances and Welch's
test), and a bounded uniform reservoir of latencies for rank tests. Each process flushes its
cumulative tally every few seconds; :func:`merge` adds the processes' tallies, which is exact
for the counts and sums and a union of the reservoirs (each uniform within its process).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

RESERVOIR = 512


class Tally:
    """Counts, latency sums and a latency reservoir of one variant in one process."""

    __slots__ = ("_rng", "count", "errors", "latency_sq", "latency_sum", "reservoir")

    def __init__(self, seed: int | None = None) -> None:
        self.count = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.latency_sq = 0.0
        self.reservoir: list[float] = []
        self._rng = random.Random(seed)

    def add(self, ok: bool, latency_ms: float) -> None:
        """Count one request (a few additions; a reservoir slot now and then)."""
        self.count += 1
        if not ok:
            self.errors += 1
        self.latency_sum += latency_ms
        self.latency_sq += latency_ms * latency_ms
        if len(self.reservoir) < RESERVOIR:
            self.reservoir.append(latency_ms)
        else:  # Algorithm R: every request so far is in the reservoir with equal chance
            slot = self._rng.randrange(self.count)
            if slot < RESERVOIR:
                self.reservoir[slot] = latency_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "latency_sum": self.latency_sum,
            "latency_sq": self.latency_sq,
            "reservoir": [round(x, 4) for x in self.reservoir],
        }


def merge(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum tallies of several processes (the dicts :meth:`Tally.to_dict` made)."""
    total: dict[str, Any] = {
        "count": 0, "errors": 0, "latency_sum": 0.0, "latency_sq": 0.0, "reservoir": []
    }  # fmt: skip
    for part in parts:
        for key in ("count", "errors", "latency_sum", "latency_sq"):
            total[key] += part.get(key, 0)
        total["reservoir"].extend(part.get("reservoir", []))
    return total
