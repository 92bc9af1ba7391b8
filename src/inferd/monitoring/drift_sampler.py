"""Sampling requests for drift detection: one cheap decision on the request path.

    DataPlane.infer ── sampler.rates (a dict; empty when no model is watched)
                        └── wants(model): one dict lookup and one random() -> take(...)
    take()   copies at most ROWS_PER_REQUEST rows of the request's inputs and outputs into
             the buffer of its (model, version): a reservoir of ``capacity`` rows (Algorithm
             R) that counts how many rows it has seen
    collect  on the event loop, every ``flush_s``: swaps the buffers out; write() appends
             them to ``drift_samples`` in a thread (one row per version per flush)

Why batches appended to the database rather than one shared reservoir: each process's batch
is a uniform sample of what that process sampled in a few seconds, and the batch says how
many rows it stands for, so the window of any process that reads the table is the union of
every process's samples, re-weighted by :func:`~inferd.monitoring.drift_check.merge_batches`
into a uniform sample again. This is the same flush the experiment tallies use
(``traffic/policy.py``), so with ``--workers N`` and several replicas every request has the
same chance to reach the window, a process needs no knowledge of the others, and memory per
process is bounded by ``capacity`` rows per version between two flushes. A failed write
drops that batch (counted in ``dropped``): drift windows tolerate a lost batch, and retrying
would let memory grow while the database is away.

Cost when a model is watched: ``rates.get`` and ``random.random()`` per request (about
0.1 µs); a sampled request adds the copy of its rows (microseconds). Nothing else runs on
the request path.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from inferd.monitoring.drift_profile import columns_of
from inferd.monitoring.drift_store import Batch, DriftStore

logger = logging.getLogger(__name__)

ROWS_PER_REQUEST = 16  # a big batch request would otherwise crowd out everyone else's rows
CAPACITY = 1_000  # rows per (model, version) between two flushes
OUTPUT_PREFIX = "output."


class _Buffer:
    """A reservoir of rows (feature -> value dicts) and how many rows were offered."""

    __slots__ = ("capacity", "rows", "seen")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: list[dict[str, Any]] = []
        self.seen = 0

    def add(self, row: dict[str, Any], rng: random.Random) -> None:
        self.seen += 1
        if len(self.rows) < self.capacity:
            self.rows.append(row)
            return
        slot = rng.randrange(self.seen)
        if slot < self.capacity:
            self.rows[slot] = row

    def batch(self) -> Batch:
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return self.seen, {n: [row.get(n) for row in self.rows] for n in names}


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: floats (NaN as None), ints, text."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str | bool) else str(value)


class DriftSampler:
    """The per-process sampler; ``rates`` is refreshed by the drift monitor.

    Args:
        store: where batches go; None keeps them in memory only (tests).
        capacity: rows kept per (model, version) between two flushes.
        seed: seeds the sampling decisions and the reservoirs.
        source: this process's name in the batch rows.
    """

    def __init__(
        self, store: DriftStore | None, capacity: int = CAPACITY, seed: int | None = None,
        source: str | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.capacity = capacity
        self.rates: dict[str, float] = {}
        self.source = source or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.sampled = 0
        self.dropped = 0
        self._rng = random.Random(seed)
        self._buffers: dict[tuple[str, int], _Buffer] = {}

    def wants(self, model: str) -> bool:
        """The sampling decision for one request of ``model``."""
        rate = self.rates.get(model)
        return rate is not None and self._rng.random() < rate

    def take(
        self, model: str, version: str, inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:  # fmt: skip
        """Keep the rows of one sampled request (an observer: never raises)."""
        try:
            if not version.isdigit():
                return
            ins = columns_of(inputs, ROWS_PER_REQUEST)
            outs = columns_of(outputs, ROWS_PER_REQUEST)
            rows = min((v.shape[0] for v in (*ins.values(), *outs.values())), default=0)
            key = (model, int(version))
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(self.capacity)
            for i in range(rows):
                row = {n: _plain(v[i]) for n, v in ins.items()}
                row.update({OUTPUT_PREFIX + n: _plain(v[i]) for n, v in outs.items()})
                buffer.add(row, self._rng)
            self.sampled += 1
        except Exception:  # an observer's failure never reaches a request
            logger.exception("drift sampling of %s/%s failed", model, version)

    def collect(self) -> dict[tuple[str, int], Batch]:
        """Swap the buffers out (on the thread that calls :meth:`take`)."""
        buffers, self._buffers = self._buffers, {}
        return {key: b.batch() for key, b in buffers.items() if b.rows}

    def write(self, batches: dict[tuple[str, int], Batch], at: datetime | None = None) -> None:
        """Append one flush to the registry, made ``at`` (now by default; blocking: call it
        in a thread)."""
        if self.store is None or not batches:
            return
        try:
            self.store.add_batches(self.source, batches, at or datetime.now(UTC))
        except Exception:
            self.dropped += sum(seen for seen, _ in batches.values())
            raise
