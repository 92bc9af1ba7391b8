"""Sampling requests for drift detection: one cheap decision on the request path.

    DataPlane.infer ── sampler.rates (a dict; empty when no model is watched)
                        └── wants(model): one dict lookup and one random() -> take(...)
    take()   copies at most ROWS_PER_REQUEST rows of the request's input and output arrays
             and offers each row to the buffer of its (model, version): a reservoir of
             ``capacity`` rows (Algorithm R) that counts how many rows it has seen
    collect  on the event loop, every ``flush_s``: swaps the buffers out; write() turns
             them into columns and appends them to ``drift_samples`` in a thread (one row
             per version per flush)

Why batches appended to the database rather than one shared reservoir: each process's batch
is a uniform sample of what that process sampled in a few seconds, and the batch says how
many rows it stands for, so the window of any process that reads the table is the union of
every process's samples, re-weighted by :func:`~inferd.monitoring.drift_check.merge_batches`
into a uniform sample again. This is the same flush the experiment tallies use
(``traffic/policy.py``), so with ``--workers N`` and several replicas every request has the
same chance to reach the window, a process needs no knowledge of the others, and memory per
process is bounded by ``capacity`` rows per version between two flushes (the monitor sizes it
per model so a window holds about twice ``max_samples`` rows per process: the table's size
follows the settings, not the traffic). A failed write
drops that batch (counted in ``dropped``): drift windows tolerate a lost batch, and retrying
would let memory grow while the database is away.

Cost (bench/drift_cost.py): with no model watched, one empty-dict test per request; when a
model is watched, ``rates.get`` and ``random()`` (about 0.1 µs); a sampled request adds the
copy of its arrays (a few µs for ``mlp``'s 256 inputs and 10 outputs). Turning values into
JSON columns happens in the flush thread. Nothing else runs on the request path.
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
CAPACITY = 1_000  # rows per (model, version) between two flushes, unless set per model
OUTPUT_PREFIX = "output."


Row = tuple[dict[str, np.ndarray], int]  # one request's arrays (inputs, output.*), a row


class _Buffer:
    """A reservoir of rows and how many rows were offered.

    A row is a reference to its request's copied arrays and its index there: keeping a row
    costs no conversion on the request path; :meth:`batch` builds the columns in the flush
    thread.
    """

    __slots__ = ("capacity", "rows", "seen")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: list[Row] = []
        self.seen = 0

    def add(self, row: Row, rng: random.Random) -> None:
        self.seen += 1
        if len(self.rows) < self.capacity:
            self.rows.append(row)
            return
        slot = rng.randrange(self.seen)
        if slot < self.capacity:
            self.rows[slot] = row

    def batch(self) -> Batch:
        """Column-wise JSON-ready values of the kept rows (features a row lacks: None).

        The kept rows of requests whose tensors have the same names, types and row shapes
        are concatenated first, so each column is sliced and converted once per flush
        rather than once per sampled request (a 256-feature model made 256 tiny numpy
        conversions per request: most of what drift sampling cost the server).
        """
        by_request: dict[int, tuple[dict[str, np.ndarray], list[int]]] = {}
        for arrays, i in self.rows:  # the rows of one request are taken together
            by_request.setdefault(id(arrays), (arrays, []))[1].append(i)
        groups: dict[tuple[Any, ...], list[dict[str, np.ndarray]]] = {}
        for arrays, indices in by_request.values():
            kept = {n: a[indices] for n, a in arrays.items()}
            layout = tuple((n, a.dtype.str, a.shape[1:]) for n, a in kept.items())
            groups.setdefault(layout, []).append(kept)
        columns: dict[str, list[Any]] = {}
        done = 0
        for parts in groups.values():
            joined = {n: np.concatenate([part[n] for part in parts]) for n in parts[0]}
            rows = next(iter(joined.values())).shape[0] if joined else 0
            for name, values in columns_of(joined).items():
                columns.setdefault(name, [None] * done).extend(_plain(values))
            done += rows
            for column in columns.values():
                column.extend([None] * (done - len(column)))
        return self.seen, columns


def _plain(values: np.ndarray) -> list[Any]:
    """JSON-ready values: numbers (NaN and infinities as None) or text."""
    if values.dtype.kind == "f":
        listed: list[Any] = values.tolist()
        finite = np.isfinite(values)
        if finite.all():
            return listed
        return [v if ok else None for v, ok in zip(listed, finite.tolist(), strict=True)]
    if values.dtype.kind in "iu":
        return list(values.tolist())
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in values.tolist()]  # fmt: skip


def _rows(array: np.ndarray) -> np.ndarray:
    """A copy of at most ROWS_PER_REQUEST rows (keeps no view of a whole batch's output)."""
    value = np.asarray(array)
    return (value.reshape(1) if value.ndim == 0 else value[:ROWS_PER_REQUEST]).copy()


Pending = dict[tuple[str, int], _Buffer]


class DriftSampler:
    """The per-process sampler; ``rates`` is refreshed by the drift monitor.

    Args:
        store: where batches go; None keeps them in memory only (tests, benchmarks).
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
        self.capacities: dict[str, int] = {}  # per model, else ``capacity``
        self.source = source or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.sampled = 0
        self.dropped = 0
        self._rng = random.Random(seed)
        self._buffers: Pending = {}

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
            arrays = {n: _rows(a) for n, a in inputs.items()}
            arrays.update({OUTPUT_PREFIX + n: _rows(a) for n, a in outputs.items()})
            rows = min((a.shape[0] for a in arrays.values()), default=0)
            key = (model, int(version))
            buffer = self._buffers.get(key)
            if buffer is None:
                size = self.capacities.get(model, self.capacity)
                buffer = self._buffers[key] = _Buffer(size)
            for i in range(rows):
                buffer.add((arrays, i), self._rng)
            self.sampled += 1
        except Exception:  # an observer's failure never reaches a request
            logger.exception("drift sampling of %s/%s failed", model, version)

    def collect(self) -> Pending:
        """Swap the buffers out (on the thread that calls :meth:`take`; cheap)."""
        buffers, self._buffers = self._buffers, {}
        return {key: b for key, b in buffers.items() if b.rows}

    @staticmethod
    def batches(pending: Pending) -> dict[tuple[str, int], Batch]:
        """The column-wise batches of collected buffers (blocking: in the flush thread)."""
        return {key: buffer.batch() for key, buffer in pending.items()}

    def write(self, pending: Pending, at: datetime | None = None) -> None:
        """Append one flush to the registry, made ``at`` (now by default; blocking: call it
        in a thread)."""
        if self.store is None or not pending:
            return
        batches = self.batches(pending)
        try:
            self.store.add_batches(self.source, batches, at or datetime.now(UTC))
        except Exception:
            self.dropped += sum(seen for seen, _ in batches.values())
            raise
