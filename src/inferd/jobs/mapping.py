"""From table columns to model inputs, and from model outputs to output columns.

A model input is fed by one of:

- one column per feature (``--columns x=f0,f1,f2`` or a glob ``x=feat_*``), stacked in
  order into a [rows, features] tensor;
- one list column holding each row's whole tensor (``--columns x=embedding``), fixed size;
- for an input of shape [-1], one scalar column.

Rows with a missing value, a list of the wrong length, or NaN/Inf where the input's
``allow_nan`` is false are set aside with the reason; the other rows go on. The raw columns
of a model with declared preprocessing are ``nullable``: a missing value reaches the
preprocessing as NaN (or None in text), which imputes it or refuses the row, as online.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from inferd.errors import InvalidInput
from inferd.types import DATATYPE_TO_DTYPE, Signature, TensorSpec

Reasons = dict[int, str]  # position in the chunk -> why the row was set aside


@dataclass(frozen=True, slots=True)
class Binding:
    """Where one model input comes from. ``row_shape`` may hold one -1 (taken from the data)."""

    input: str
    columns: tuple[str, ...]
    tensor: bool
    row_shape: tuple[int, ...]
    datatype: str
    allow_nan: bool
    nullable: bool = False  # a missing value is NaN / None (declared preprocessing's columns)

    @property
    def width(self) -> int:
        """Values per row when known, else -1."""
        known = [d for d in self.row_shape if d > 0]
        return math.prod(known) if len(known) == len(self.row_shape) else -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Binding:
        return cls(
            data["input"],
            tuple(data["columns"]),
            bool(data["tensor"]),
            tuple(data["row_shape"]),
            data["datatype"],
            bool(data["allow_nan"]),
            bool(data.get("nullable", False)),
        )


def resolve_bindings(
    signature: Signature,
    schema: pa.Schema,
    columns: Mapping[str, list[str]],
    passthrough: list[str],
    nullable: Collection[str] = (),
) -> list[Binding]:
    """Bind every model input to columns of ``schema``; inputs in ``nullable`` take missing
    values as NaN (numbers) or None (text) instead of setting their rows aside.

    Raises:
        InvalidInput: naming the input or column at fault and what would fit.
    """
    names = [s.name for s in signature.inputs]
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise InvalidInput("--columns", f"model inputs among {names}", f"{unknown}")
    missing = [c for c in passthrough if c not in schema.names]
    if missing:
        raise InvalidInput("--passthrough", f"columns among {schema.names}", f"{missing}")
    clash = sorted(set(passthrough) & {s.name for s in signature.outputs})
    if clash:
        raise InvalidInput("--passthrough", "names other than the model's outputs", f"{clash}")
    bindings = []
    for spec in signature.inputs:
        chosen = _match(spec, schema, columns.get(spec.name), passthrough, len(names))
        bindings.append(_bind(spec, schema, chosen, spec.name in nullable))
    return bindings


def _match(
    spec: TensorSpec,
    schema: pa.Schema,
    patterns: list[str] | None,
    passthrough: list[str],
    inputs: int,
) -> list[str]:
    if patterns is None:
        if spec.name in schema.names:
            return [spec.name]
        if inputs > 1:
            raise InvalidInput(
                f"input '{spec.name}'",
                f"a column named '{spec.name}' or --columns {spec.name}=COLUMNS",
                f"columns {schema.names}",
            )
        return [n for n in schema.names if n not in passthrough]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in schema.names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise InvalidInput(
                f"--columns {spec.name}",
                f"columns among {schema.names}",
                f"nothing matching {pattern!r}",
            )
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _bind(spec: TensorSpec, schema: pa.Schema, chosen: list[str], nullable: bool) -> Binding:
    row_shape = tuple(spec.shape[1:])
    if spec.datatype not in DATATYPE_TO_DTYPE:
        raise InvalidInput(f"input '{spec.name}'", "a known datatype", spec.datatype)
    kind = schema.field(chosen[0]).type if chosen else None
    tensor = len(chosen) == 1 and kind is not None and _is_list(kind) and bool(row_shape)
    if tensor and isinstance(kind, pa.FixedSizeListType):
        row_shape = _fill(spec, row_shape, kind.list_size)
    elif not tensor:
        if not row_shape and len(chosen) != 1:
            raise InvalidInput(
                f"input '{spec.name}'",
                "one column (shape [-1])",
                f"{len(chosen)} columns {chosen[:5]}",
            )
        if row_shape:
            row_shape = _fill(spec, row_shape, len(chosen))
    return Binding(
        spec.name, tuple(chosen), tensor, row_shape, spec.datatype, spec.allow_nan, nullable
    )


def _fill(spec: TensorSpec, row_shape: tuple[int, ...], width: int) -> tuple[int, ...]:
    known = math.prod(d for d in row_shape if d > 0)
    unknown = sum(1 for d in row_shape if d < 0)
    if unknown > 1 or (unknown == 0 and known != width) or width % known:
        raise InvalidInput(
            f"input '{spec.name}'",
            f"{known} values per row (shape {list(spec.shape)})",
            f"{width} (columns or list size)",
        )
    return tuple(width // known if d < 0 else d for d in row_shape)


def _is_list(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


def read_types(
    bindings: list[Binding], schema: pa.Schema, passthrough: list[str], text: bool
) -> pa.Schema:
    """The columns a chunk reads and their types.

    Text formats infer types from a sample, so feature columns get the model's type family
    instead (an integer sample must not refuse ``1.5`` later); Parquet keeps its own types.
    """
    fields: dict[str, pa.Field] = {}
    for b in bindings:
        for name in b.columns:
            kind = schema.field(name).type
            if text and b.datatype != "BYTES":
                scalar = pa.float64() if b.datatype.startswith("FP") else pa.int64()
                scalar = pa.bool_() if b.datatype == "BOOL" else scalar
                kind = pa.list_(scalar) if b.tensor else scalar
            fields[name] = pa.field(name, kind)
    for name in passthrough:
        fields.setdefault(name, schema.field(name))
    return pa.schema(list(fields.values()))


def to_inputs(table: pa.Table, bindings: list[Binding]) -> tuple[dict[str, np.ndarray], Reasons]:
    """Model inputs for the rows that pass, and the reason of each row that does not.

    The returned arrays hold only the passing rows, in order.
    """
    reasons: Reasons = {}
    full = {b.input: _tensor(table, b, reasons) for b in bindings}
    if not reasons:
        return full, reasons
    good = np.ones(table.num_rows, dtype=bool)
    good[list(reasons)] = False
    return {name: array[good] for name, array in full.items()}, reasons


def _tensor(table: pa.Table, b: Binding, reasons: Reasons) -> np.ndarray:
    dtype = DATATYPE_TO_DTYPE[b.datatype]
    array: np.ndarray
    if b.tensor:
        array = _from_list(table.column(b.columns[0]), b, dtype, reasons)
    elif not b.row_shape and b.nullable:
        array = _nullable(table.column(b.columns[0]), b.columns[0], dtype, reasons)
    elif not b.row_shape:
        array = _column(table.column(b.columns[0]), b.columns[0], dtype, reasons)
    else:
        array = np.empty((table.num_rows, len(b.columns)), dtype=dtype, order="F")
        for j, name in enumerate(b.columns):
            array[:, j] = _column(table.column(name), name, dtype, reasons)
        array = np.ascontiguousarray(array).reshape((table.num_rows, *b.row_shape))
    if not b.allow_nan and array.dtype.kind in "fc":
        finite = np.isfinite(array.reshape(table.num_rows, -1)).all(axis=1)
        _note(reasons, ~finite, f"input '{b.input}': NaN or Inf where the model allows none")
    return array


def _column(column: pa.ChunkedArray, name: str, dtype: np.dtype[Any], reasons: Reasons) -> Any:
    if column.null_count:
        _note(reasons, column.is_null().to_numpy(zero_copy_only=False), f"column '{name}': missing")
        column = pc.fill_null(column, _zero(column.type))
    if dtype.kind == "O":
        return np.array(
            [v if isinstance(v, bytes) else str(v).encode() for v in column.to_pylist()],
            dtype=object,
        )
    values = column.to_numpy()
    try:
        return values.astype(dtype, copy=False)
    except (ValueError, TypeError):
        out = np.zeros(len(values), dtype=dtype)
        for i, value in enumerate(values):
            try:
                out[i] = value
            except (ValueError, TypeError):
                reasons.setdefault(i, f"column '{name}': expected a number, got {value!r:.40}")
        return out


def _nullable(column: pa.ChunkedArray, name: str, dtype: np.dtype[Any], reasons: Reasons) -> Any:
    """A column whose missing values stay missing: NaN for numbers, None for text."""
    if not column.null_count:
        return _column(column, name, dtype, reasons)
    if dtype.kind == "O":
        listed = column.to_pylist()
        return np.array(
            [v if v is None or isinstance(v, bytes) else str(v).encode() for v in listed],
            dtype=object,
        )
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if dtype.kind == "f" and numeric:
        return column.to_numpy().astype(dtype)  # nulls become NaN
    return _column(column, name, dtype, reasons)  # integers have no NaN: set aside


def _from_list(column: pa.ChunkedArray, b: Binding, dtype: np.dtype[Any], reasons: Reasons) -> Any:
    name, rows = b.columns[0], len(column)
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    lengths = pc.fill_null(pc.list_value_length(array), -1).to_numpy()
    width = b.width
    if width < 0:  # a -1 in the row shape: the first complete row decides
        valid = lengths[lengths >= 0]
        width = int(valid[0]) if len(valid) else 0
    wrong = lengths != width
    _note(reasons, lengths < 0, f"column '{name}': missing")
    _note(reasons, wrong & (lengths >= 0), f"column '{name}': expected {width} values per row")
    kept = array.filter(pa.array(~wrong)) if wrong.any() else array
    flat = kept.flatten()
    if flat.null_count:
        parents = pc.list_parent_indices(kept).to_numpy()[flat.is_null().to_numpy(False)]
        bad = np.zeros(rows, dtype=bool)
        bad[np.flatnonzero(~wrong)[np.unique(parents)]] = True
        _note(reasons, bad, f"column '{name}': missing value inside the list")
        flat = pc.fill_null(flat, _zero(flat.type))
    values = flat.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, width)
    if wrong.any():
        out = np.zeros((rows, width), dtype=dtype)
        out[~wrong] = values
        values = out
    known = math.prod(d for d in b.row_shape if d > 0)
    return values.reshape((rows, *[width // known if d < 0 else d for d in b.row_shape]))


def _zero(kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_boolean(kind):
        return pa.scalar(False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.scalar("", kind)
    if pa.types.is_binary(kind):
        return pa.scalar(b"", kind)
    return pa.scalar(0, kind)


def _note(reasons: Reasons, mask: np.ndarray, reason: str) -> None:
    for position in np.flatnonzero(mask):
        reasons.setdefault(int(position), reason)


def output_table(
    outputs: Mapping[str, np.ndarray], specs: tuple[TensorSpec, ...], passthrough: pa.Table
) -> pa.Table:
    """Passthrough columns, then one column per model output.

    An output of one value per row becomes a scalar column; a larger one a fixed-size list
    column of the row's values (flattened, with the shape in the field metadata).
    """
    columns, fields = list(passthrough.columns), list(passthrough.schema)
    for spec in specs:
        array = np.asarray(outputs[spec.name])
        rows = array.shape[0] if array.ndim else 1
        per_row = array.shape[1:]
        if math.prod(per_row) == 1:
            column: pa.Array = _arrow(array.reshape(rows))
            field = pa.field(spec.name, column.type)
        else:
            values = _arrow(array.reshape(-1))
            column = pa.FixedSizeListArray.from_arrays(values, math.prod(per_row))
            field = pa.field(spec.name, column.type, metadata={"shape": str(list(per_row))})
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype.kind == "O":
        return pa.array(list(values), type=pa.binary())
    return pa.array(values)
