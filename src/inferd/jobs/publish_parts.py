"""Reading a finished job's part files for publishing: its key column and outputs, in batches.

Parquet parts are read by record batch (memory bounded by ``batch_rows``); JSON Lines parts
(at most one chunk each) whole. Output columns come back as ``[rows, *shape]`` arrays in the
dtype the model declares (``model.yaml`` outputs) or, without one, the column's own.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from inferd.errors import InvalidInput
from inferd.resilience.layout import OutputColumn
from inferd.resilience.tables import TableRecord
from inferd.types import DATATYPE_TO_DTYPE

Rows = tuple[str, list[str], dict[str, np.ndarray]]  # part, keys, outputs


def output_columns(
    fs: Any, parts: list[str], names: list[str], declared: Mapping[str, Mapping[str, Any]],
    output_format: str | None,
) -> tuple[OutputColumn, ...]:  # fmt: skip
    """The table's columns: each output's dtype and per-row shape, from the first part.

    Raises:
        InvalidInput: the job wrote no rows, or an output column is missing.
    """
    if not parts:
        raise InvalidInput("job output", "at least one row with predictions", "0 rows")
    schema = _first_schema(fs, parts[0], output_format)
    columns = []
    for name in names:
        if name not in schema.names:
            where = posixpath.basename(parts[0])
            raise InvalidInput(
                f"output '{name}'", "a column of the job's output", f"{schema.names} in {where}"
            )
        field = schema.field(name)
        config = declared.get(name, {})
        shape = _row_shape(field, config)
        if shape == (-1,):  # a JSON list of unknown length: the first row decides
            shape = (_first_length(fs, parts[0], name),)
        kind = field.type.value_type if _is_list(field.type) else field.type
        dtype = DATATYPE_TO_DTYPE[config["datatype"].upper()] if "datatype" in config else None
        columns.append(OutputColumn(name, (dtype or np.dtype(kind.to_pandas_dtype())).str, shape))
    return tuple(columns)


def read_rows(fs: Any, parts: list[str], record: TableRecord, batch_rows: int) -> Iterator[Rows]:
    """Each batch of every part: its entity ids as text and its outputs.

    Raises:
        InvalidInput: an id is missing (null), or an output row has the wrong size.
    """
    names = [c.name for c in record.outputs]
    for part in parts:
        for batch in _batches(fs, part, [record.key_column, *names], batch_rows):
            keys = batch.column(record.key_column).to_pylist()
            if any(k is None for k in keys):
                raise InvalidInput(f"column '{record.key_column}'", "an id in every row",
                                   f"null in {posixpath.basename(part)}")  # fmt: skip
            arrays = {c.name: _array(batch.column(c.name), c, part) for c in record.outputs}
            yield part, [str(k) for k in keys], arrays


def _batches(fs: Any, part: str, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    with fs.open(part, "rb") as handle:
        if part.endswith(".jsonl"):
            table = pj.read_json(handle).select(columns)
            yield from table.to_batches(max_chunksize=batch_rows)
            return
        yield from pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=columns)


def _first_schema(fs: Any, part: str, output_format: str | None) -> pa.Schema:
    with fs.open(part, "rb") as handle:
        if output_format == "jsonl" or part.endswith(".jsonl"):
            return pj.read_json(handle).schema
        return pq.ParquetFile(handle).schema_arrow


def _row_shape(field: pa.Field, config: Mapping[str, Any]) -> tuple[int, ...]:
    declared = tuple(int(d) for d in config.get("shape", [])[1:])
    if not _is_list(field.type):
        return ()
    meta = (field.metadata or {}).get(b"shape")
    if meta is not None:  # a fixed-size list column written by the job: its row shape
        return tuple(int(d) for d in meta.decode().strip("[]").split(",") if d.strip())
    if isinstance(field.type, pa.FixedSizeListType):
        return (field.type.list_size,)
    if declared and all(d > 0 for d in declared):
        return declared
    return (-1,)


def _first_length(fs: Any, part: str, name: str) -> int:
    with fs.open(part, "rb") as handle:
        first = pj.read_json(handle).column(name)[0].as_py()
    return len(first) if isinstance(first, list) else 1


def _array(column: pa.Array, spec: OutputColumn, part: str) -> np.ndarray:
    rows = len(column)
    if not spec.shape:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=spec.dtype)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(spec.dtype, copy=False)
    width = math.prod(spec.shape)
    if width < 0 or values.size != rows * width:
        where = posixpath.basename(part)
        raise InvalidInput(
            f"output '{spec.name}'",
            f"{width} values per row",
            f"{values.size} in {rows} rows of {where}",
        )
    return np.asarray(values).reshape(rows, *spec.shape)


def _is_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind)
                or pa.types.is_large_list(kind))  # fmt: skip
