"""Value-by-value conversion for the rare chunk the fast Arrow readers refuse.

The fast path reads a whole chunk with fixed column types. When one value does not fit
(``abc`` in a number column, a line that is not JSON), the chunk is read again here: every
column is converted on its own, and only the rows whose values do not convert are set aside,
each with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

RowErrors = dict[int, str]  # position in the chunk -> reason


def cast_columns(
    values: dict[str, pa.Array | list[Any]], schema: pa.Schema, errors: RowErrors
) -> dict[str, list[Any] | pa.Array]:
    """Convert each column to its schema type, recording the rows that do not convert."""
    out: dict[str, list[Any] | pa.Array] = {}
    for field in schema:
        column = values[field.name]
        if (
            isinstance(column, pa.Array)
            and pa.types.is_string(column.type)
            and not (pa.types.is_string(field.type))
        ):  # CSV: an empty field is a missing value, as in Arrow's own CSV reader
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        try:
            if isinstance(column, pa.Array):
                out[field.name] = column.cast(field.type)
            else:
                out[field.name] = pa.array(column, type=field.type)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            pass
        items = column.to_pylist() if isinstance(column, pa.Array) else column
        convert = _converter(field.type)
        converted: list[Any] = []
        for position, value in enumerate(items):
            try:
                converted.append(None if value is None else convert(value))
            except (ValueError, TypeError, OverflowError, pa.ArrowException):
                converted.append(None)
                errors.setdefault(
                    position, f"column '{field.name}': expected {field.type}, got {_show(value)}"
                )
        out[field.name] = converted
    return out


def build_table(
    columns: dict[str, list[Any] | pa.Array], schema: pa.Schema, keep: list[int]
) -> pa.Table:
    """A table of the rows at positions ``keep``."""
    arrays = []
    for field in schema:
        column = columns[field.name]
        if isinstance(column, pa.Array):
            arrays.append(column.take(pa.array(keep, type=pa.int64())))
        else:
            arrays.append(pa.array([column[i] for i in keep], type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def json_lines(data: bytes, names: list[str]) -> tuple[dict[str, list[Any]], int, RowErrors]:
    """Parse JSON Lines one line at a time: column values, record count, unreadable lines."""
    columns: dict[str, list[Any]] = {name: [] for name in names}
    errors: RowErrors = {}
    position = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        record: Any = None
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            errors[position] = f"not valid JSON ({err})"
        if record is not None and not isinstance(record, dict):
            errors[position] = f"expected a JSON object, got {type(record).__name__}"
        for name in names:
            columns[name].append(record.get(name) if isinstance(record, dict) else None)
        position += 1
    return columns, position, errors


def _converter(kind: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_integer(kind):
        return _to_int
    if pa.types.is_floating(kind):
        return _to_float
    if pa.types.is_boolean(kind):
        return _to_bool
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _to_str
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        item = _converter(kind.value_type)
        return lambda v: [None if x is None else item(x) for x in _to_list(v)]
    return lambda v: pa.array([v]).cast(kind)[0].as_py()


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("fraction")
        return int(value)
    return int(value.strip()) if isinstance(value, str) else int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("bool")
    return float(value.strip()) if isinstance(value, str) else float(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(text)


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(type(value).__name__)
    return value


def _to_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(type(value).__name__)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
