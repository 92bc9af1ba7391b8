"""Rows of named values (``{"instances": [{"age": 31, "country": "DE"}, ...]}``) as columns.

The row-oriented shape of KServe's V1 protocol and MLServer's pandas codec: each instance is
an object from input name to that row's value. A key absent from a row, or ``null``, is a
missing value: NaN in a number column, ``None`` in a text column (declared preprocessing
imputes or refuses it, see docs/preprocessing.md); a model without preprocessing refuses
NaN where its signature says ``allow_nan: false``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.errors import InvalidInput
from inferd.protocol._tensors import describe

MAX_INSTANCES = 1_000_000


def instances_to_inputs(raw: object) -> dict[str, np.ndarray]:
    """Columns (first dimension: rows) from a list of row objects.

    Raises:
        InvalidInput: not a non-empty list of objects, or a column mixing kinds of values.
    """
    expected = "a non-empty list of objects mapping input names to values"
    if not isinstance(raw, list) or not raw or len(raw) > MAX_INSTANCES:
        raise InvalidInput("instances", expected, describe(raw))
    names: dict[str, None] = {}
    for i, row in enumerate(raw):
        if not isinstance(row, dict) or not row:
            raise InvalidInput(f"instances[{i}]", "an object mapping input names to values",
                               describe(row))  # fmt: skip
        names.update(dict.fromkeys(row))
    return {name: _column(name, [row.get(name) for row in raw]) for name in names}


def _column(name: str, values: list[Any]) -> np.ndarray:
    kinds = {type(v) for v in values}  # one pass; numpy does the conversion
    field = f"instances[*].{name}"
    missing = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return np.full(len(values), np.nan)
    if kinds == {bool}:
        if missing:
            raise InvalidInput(field, "true or false in every row", "a missing value")
        return np.array(values, dtype=np.bool_)
    if kinds <= {int, float}:
        if kinds == {int} and not missing:
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:  # past 64 bits: as floats, like any JSON parser would
                return np.array(values, dtype=np.float64)
        return np.array([np.nan if v is None else v for v in values] if missing else values,
                        dtype=np.float64)  # fmt: skip
    if kinds == {str}:
        return np.array(values, dtype=object if missing else np.str_)
    if kinds == {list} and not missing:
        try:
            array = np.asarray(values)
        except ValueError:
            array = np.asarray([], dtype=object)
        if array.dtype.kind in "biufU" and array.ndim > 1:
            return array
        raise InvalidInput(field, "lists of one shape of numbers in every row", "ragged lists")
    raise InvalidInput(field, "values of one kind (numbers, text, booleans or same-shape "
                       "lists) in every row", "a mix of kinds or objects")  # fmt: skip
