"""The bytes of one precomputed row: every output of the row, packed in a fixed layout.

A table's layout is a numpy structured dtype, one field per output (its dtype and per-row
shape), so a row is ``itemsize`` bytes with no header, and a batch of looked-up rows decodes
with one ``frombuffer``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferd.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """One output of a table: its name, numpy dtype string (``<f4``) and per-row shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_list(self) -> list[Any]:
        return [self.name, self.dtype, list(self.shape)]

    @classmethod
    def from_list(cls, raw: Sequence[Any]) -> OutputColumn:
        name, dtype, shape = raw
        return cls(str(name), str(dtype), tuple(int(d) for d in shape))


class RowLayout:
    """Packs outputs row by row and unpacks looked-up rows.

    Args:
        columns: the table's outputs, in storage order.

    Raises:
        InvalidInput: an output that is not numeric (BYTES outputs are not stored).
    """

    def __init__(self, columns: Sequence[OutputColumn]) -> None:
        for column in columns:
            if np.dtype(column.dtype).kind not in "biuf":
                raise InvalidInput(
                    f"output '{column.name}'", "a numeric or BOOL output", f"dtype {column.dtype}"
                )
        self.columns = tuple(columns)
        self.dtype = np.dtype([(c.name, np.dtype(c.dtype), c.shape) for c in columns])

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize

    def encode(self, arrays: Mapping[str, np.ndarray]) -> list[bytes]:
        """One ``bytes`` per row of ``arrays`` (each ``[rows, *shape]`` of its column)."""
        rows = len(next(iter(arrays.values()))) if arrays else 0
        packed = np.empty(rows, self.dtype)
        for column in self.columns:
            packed[column.name] = np.asarray(arrays[column.name]).reshape(rows, *column.shape)
        raw = packed.tobytes()
        size = self.row_bytes
        return [raw[i * size : (i + 1) * size] for i in range(rows)]

    def decode(
        self, values: Sequence[bytes], shapes: Mapping[str, tuple[int, ...]] | None = None
    ) -> dict[str, np.ndarray]:
        """The outputs of ``values`` stacked as ``[rows, *shape]`` arrays.

        Args:
            values: the rows' bytes, each :attr:`row_bytes` long.
            shapes: per-row shapes to answer in instead of the stored ones (same size), e.g.
                the version's signature saying ``[-1, 1]`` where the job wrote a scalar column.

        Raises:
            ValueError: a value of the wrong length (not a row of this layout).
        """
        raw = b"".join(values)
        if len(raw) != self.row_bytes * len(values):
            raise ValueError(f"expected rows of {self.row_bytes} bytes, got {len(raw)} in all")
        packed = np.frombuffer(raw, self.dtype, len(values))
        out: dict[str, np.ndarray] = {}
        for column in self.columns:
            shape = (shapes or {}).get(column.name, column.shape)
            out[column.name] = np.ascontiguousarray(packed[column.name]).reshape(
                len(values), *shape
            )
        return out


def answer_shapes(
    columns: Sequence[OutputColumn], signature_shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """Per-row shapes the served version declares for the table's outputs, where they are
    fully known and hold as many values as the stored rows (else the stored shape stays)."""
    shapes = {}
    for column in columns:
        declared = signature_shapes.get(column.name)
        if declared is None or any(d < 1 for d in declared):
            continue
        if math.prod(declared) == math.prod(column.shape):
            shapes[column.name] = tuple(declared)
    return shapes
