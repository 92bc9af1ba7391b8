"""Many requests' inputs packed into batch-sized requests before they reach a batcher.

For background work whose latency does not matter (shadow copies): packing a group of copies
into one request per batch leaves the batcher one queue entry, one future and one split per
batch instead of per copy, which is most of what a sparse copy costs (docs/shadow.md). The
batcher would make the same batches itself only if the copies arrived together; a 10% shadow's
copies arrive one by one.

Requests share a pack when every input agrees past the batch dimension (the batcher's own
rule), up to ``max_rows`` rows; a request that cannot be batched travels alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass(slots=True)
class Pack:
    """Requests run as one: their indices in the caller's list, their rows, the inputs."""

    members: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    parts: list[Arrays] = field(default_factory=list)
    total: int = 0  # sum(rows), kept as members join: pack() tests it for every request

    def add(self, index: int, rows: int, arrays: Arrays) -> None:
        """Add the request at ``index`` with its ``rows`` and inputs."""
        self.members.append(index)
        self.rows.append(rows)
        self.parts.append(arrays)
        self.total += rows

    def inputs(self) -> Arrays:
        """The members' inputs concatenated along the batch dimension."""
        if len(self.parts) == 1:
            return self.parts[0]
        return {name: np.concatenate([p[name] for p in self.parts]) for name in self.parts[0]}

    def unpack(self, outputs: Arrays) -> list[Arrays]:
        """Each member's rows of the pack's outputs.

        Raises:
            ValueError: an output without one row per input row (naming it and its shape).
        """
        if len(self.members) == 1:
            return [outputs]
        total = self.total
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise ValueError(
                    f"output '{name}' has shape {array.shape}, expected {total} rows for the pack"
                )
        answers: list[Arrays] = []
        start = 0
        for rows in self.rows:
            answers.append({name: array[start : start + rows] for name, array in outputs.items()})
            start += rows
        return answers


def pack(inputs: Sequence[Arrays | None], max_rows: int) -> list[Pack]:
    """Group ``inputs`` (None entries are skipped) into packs of at most ``max_rows`` rows.

    ``max_rows`` of 1 or less means the model does not batch: every request travels alone,
    as it came. Order within a pack follows ``inputs``.
    """
    packs: list[Pack] = []
    open_packs: dict[tuple[Any, ...], Pack] = {}
    for index, arrays in enumerate(inputs):
        if arrays is None:
            continue
        rows = _rows(arrays) if max_rows > 1 else None
        if rows is None or rows >= max_rows:
            alone = Pack()
            alone.add(index, rows or 0, arrays)
            packs.append(alone)
            continue
        key = tuple((name, a.shape[1:], a.dtype) for name, a in arrays.items())
        current = open_packs.get(key)
        if current is None or current.total + rows > max_rows:
            current = open_packs[key] = Pack()
            packs.append(current)
        current.add(index, rows, arrays)
    return packs


def _rows(arrays: Arrays) -> int | None:
    """The common first dimension, or None when there is none (a scalar, or disagreement)."""
    rows = None
    for array in arrays.values():
        if array.ndim == 0 or rows not in (None, array.shape[0]):
            return None
        rows = array.shape[0]
    return rows
