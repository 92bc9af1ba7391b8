"""Reading a reference dataset (CSV or Parquet, a local path or any fsspec URI) into columns.

Parquet needs pyarrow (the ``jobs`` extra); CSV needs nothing. A CSV column is numeric when
every non-empty value parses as a number (empty cells become NaN, a missing value), else it
is categorical and kept as text. At most ``max_rows`` rows are read: a reference profile keeps
a sample of 2,000 values per feature, and a million rows pin every quantile far closer than
that sample can.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import fsspec
import numpy as np

from inferd.monitoring.drift_profile import Columns

MAX_ROWS = 1_000_000


def read_columns(uri: str, max_rows: int = MAX_ROWS) -> Columns:
    """The columns of a ``.csv`` or ``.parquet`` file.

    Raises:
        ValueError: another extension, an unreadable file, or no rows.
    """
    lowered = uri.lower()
    try:
        if lowered.endswith((".parquet", ".pq")):
            columns = _parquet(uri, max_rows)
        elif lowered.endswith((".csv", ".csv.gz")):
            columns = _csv(uri, max_rows)
        else:
            raise ValueError(f"reference: expected a .csv or .parquet file, got {uri!r}")
    except (OSError, ImportError) as err:
        raise ValueError(f"reference {uri!r}: cannot read: {err}") from err
    if not columns or not next(iter(columns.values())).size:
        raise ValueError(f"reference {uri!r}: expected at least one row and column, got none")
    return columns


def _parquet(uri: str, max_rows: int) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError("Parquet needs pyarrow: pip install 'inferd[jobs]'") from err
    with fsspec.open(uri, "rb") as handle:
        table = pq.read_table(handle).slice(0, max_rows)
    columns: Columns = {}
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        if values.dtype.kind == "O":
            values = np.asarray([None if v is None else str(v) for v in values], dtype=object)
        columns[name] = values
    return columns


def _csv(uri: str, max_rows: int) -> Columns:
    compression = "gzip" if uri.lower().endswith(".gz") else None
    with fsspec.open(uri, "rt", compression=compression, newline="") as handle:
        reader = csv.reader(handle if isinstance(handle, io.TextIOBase) else iter(handle))
        header = next(reader, None)
        if header is None:
            return {}
        cells: list[list[str]] = [[] for _ in header]
        for row_number, row in enumerate(reader):
            if row_number >= max_rows:
                break
            if len(row) != len(header):
                raise ValueError(
                    f"reference {uri!r} row {row_number + 2}: expected {len(header)} cells, "
                    f"got {len(row)}"
                )
            for column, cell in zip(cells, row, strict=True):
                column.append(cell)
    return {name: _typed(values) for name, values in zip(header, cells, strict=True)}


def _typed(values: list[str]) -> np.ndarray[Any, Any]:
    try:
        return np.asarray([float(v) if v.strip() else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.asarray(values, dtype=object)
