"""Compile a ``preprocessing:`` block once, at load, into vectorised numpy functions.

    compile_preprocessing(config, signature) -> Preprocessor
        one Fill per feature: raw columns -> its column(s) of the output, whole batch at once

A numeric feature is a chain of numpy calls over the batch (its value, then impute, clip,
bucketize, scale); a one-hot is a ``searchsorted`` into the sorted categories and one fancy
assignment. Nothing loops over rows in Python except decoding text (V2 ``BYTES`` arrive as
``bytes`` objects).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from inferd.errors import ConfigError, PreprocessingError
from inferd.preprocess.apply import Columns, Fill, Preprocessor, RawColumn
from inferd.preprocess.expr import column_names, compile_expression
from inferd.preprocess.spec import Feature, OneHot, PreprocessingConfig
from inferd.types import Signature, TensorSpec

Step = Callable[[np.ndarray], np.ndarray]
_FLOAT_TYPES = ("FP16", "FP32", "FP64")
# Up to this many categories a one-hot compares each (cheapest on a few rows); above, it
# binary-searches the sorted categories (cheapest on many categories).
_FEW_CATEGORIES = 8


def compile_preprocessing(
    config: PreprocessingConfig, signature: Signature, source: str = "model.yaml"
) -> Preprocessor:
    """Bind a validated block to a model's signature and compile every feature.

    Raises:
        ConfigError: the block does not fit the model (input, width, datatype) or a raw
            column is used both as text categories and as numbers.
    """
    target = _target(config, signature, source)
    columns = _raw_columns(config, source)
    passthrough = tuple(s for s in signature.inputs if s.name != target.name)
    clash = [s.name for s in passthrough if s.name in columns]
    if clash:
        raise ConfigError(source, "preprocessing", f"raw columns {clash} share a name with "
                          "other model inputs; rename the columns")  # fmt: skip
    fills: list[Fill] = []
    start = 0
    for feature in config.features:
        fills.append(_feature(feature, start))
        start += feature.width
    names = tuple(n for f in config.features for n in f.output_names())
    optional = _optional_columns(config)
    raw = tuple(RawColumn(name, kind, optional.get(name, False)) for name, kind in columns.items())
    return Preprocessor(target, raw, names, tuple(fills), passthrough)


def _target(config: PreprocessingConfig, signature: Signature, source: str) -> TensorSpec:
    names = [s.name for s in signature.inputs]
    if config.input is None and len(names) != 1:
        raise ConfigError(source, "preprocessing.input", f"the model has inputs {names}; name "
                          "the one the features fill")  # fmt: skip
    spec = signature.input(config.input) if config.input else signature.inputs[0]
    if spec is None:
        raise ConfigError(source, "preprocessing.input", f"expected one of {names}, got "
                          f"'{config.input}'")  # fmt: skip
    if spec.datatype not in _FLOAT_TYPES:
        raise ConfigError(source, "preprocessing", f"the features fill input '{spec.name}', "
                          f"expected a float datatype ({', '.join(_FLOAT_TYPES)}), got "
                          f"{spec.datatype}")  # fmt: skip
    width = config.width
    fits = (len(spec.shape) == 2 and spec.shape[1] in (width, -1)) or (
        len(spec.shape) == 1 and width == 1
    )
    if not fits:
        raise ConfigError(source, "preprocessing.features", f"{width} feature columns declared "
                          f"but model input '{spec.name}' has shape {list(spec.shape)}; expected "
                          f"[-1, {width}]")  # fmt: skip
    return spec


def _raw_columns(config: PreprocessingConfig, source: str) -> dict[str, str]:
    """Raw column name -> kind (number, text, integer), in order of first use."""
    kinds: dict[str, str] = {}
    for i, feature in enumerate(config.features):
        if feature.expr is not None:
            used = {name: "number" for name in column_names(feature.expr)}
        elif feature.categorical:
            assert feature.one_hot is not None  # categorical implies one_hot
            used = {feature.column or feature.name: _category_kind(feature.one_hot)}
        else:
            used = {feature.column or feature.name: "number"}
        for name, kind in used.items():
            known = kinds.setdefault(name, kind)
            if {known, kind} == {"number", "integer"}:
                kinds[name] = "number"
            elif known != kind:
                raise ConfigError(source, f"preprocessing.features.{i}", f"column '{name}' is "
                                  f"used as {known} and as {kind}")  # fmt: skip
    return kinds


def _optional_columns(config: PreprocessingConfig) -> dict[str, bool]:
    """Raw column -> whether every feature reading it imputes (so it may be left out)."""
    optional: dict[str, bool] = {}
    for feature in config.features:
        if feature.expr is not None:
            for name in column_names(feature.expr):
                optional[name] = False
        else:
            name = feature.column or feature.name
            optional[name] = optional.get(name, True) and feature.impute is not None
    return optional


def _category_kind(one_hot: OneHot) -> str:
    return "integer" if one_hot.numeric else "text"


def _feature(feature: Feature, start: int) -> Fill:
    where = f"feature '{feature.name}'"
    if feature.categorical:
        assert feature.one_hot is not None  # categorical implies one_hot
        read_text = _text_source(feature, where)
        return _one_hot(feature.one_hot, where, start, read_text)
    value = _numeric_source(feature, where)
    steps = _numeric_steps(feature)
    if feature.one_hot is not None:  # integer categories of an expression or a bucket
        one_hot = feature.one_hot

        def numbers(columns: Columns) -> np.ndarray:
            return _run(steps, value(columns))

        return _one_hot(one_hot, where, start, numbers)

    def fill(columns: Columns, out: np.ndarray) -> None:
        out[:, start] = _run(steps, value(columns))

    return fill


def _run(steps: list[Step], values: np.ndarray) -> np.ndarray:
    # Called inside Preprocessor.apply's np.errstate: log(0), x/0 give values, not warnings.
    for step in steps:
        values = step(values)
    return values


def _numeric_source(feature: Feature, where: str) -> Callable[[Columns], np.ndarray]:
    if feature.expr is not None:
        evaluate = compile_expression(feature.expr)
        names = column_names(feature.expr)

        def compute(columns: Columns) -> np.ndarray:
            result = evaluate({n: _numbers(columns[n], n, where) for n in names})
            if isinstance(result, np.ndarray) and result.ndim == 1:
                return result
            rows = len(next(iter(columns.values())))  # a constant expression
            return np.full(rows, float(result))

        return compute
    name = feature.column or feature.name
    return lambda columns: _numbers(columns[name], name, where)


def _numbers(values: np.ndarray, column: str, where: str) -> np.ndarray:
    if values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    if values.dtype.kind == "O" and all(v is None or isinstance(v, int | float) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    raise PreprocessingError(where, None, f"expected numbers in column '{column}', got "
                             f"{_kind(values)}")  # fmt: skip


def _numeric_steps(feature: Feature) -> list[Step]:
    steps: list[Step] = []
    if feature.impute is not None:
        fill_value = float(feature.impute.value)
        steps.append(lambda v: np.where(np.isnan(v), fill_value, v))
    if feature.clip is not None:  # ufuncs: np.clip's wrapper costs µs on one row
        low, high = feature.clip
        if low is not None:
            steps.append(lambda v: np.maximum(v, low))
        if high is not None:
            steps.append(lambda v: np.minimum(v, high))
    if feature.bucketize is not None:
        bounds = np.asarray(feature.bucketize, dtype=np.float64)
        if feature.impute is not None:  # no NaN left to keep
            steps.append(lambda v: np.searchsorted(bounds, v, side="right"))
        else:  # a missing value stays missing (NaN), not the last bucket
            steps.append(
                lambda v: np.where(np.isnan(v), np.nan, np.searchsorted(bounds, v, side="right"))
            )
    if feature.scale is not None:
        scale = feature.scale
        if scale.kind == "standard":
            mean, std = float(scale.mean or 0.0), float(scale.std or 1.0)
            steps.append(lambda v: (v - mean) / std)
        else:
            low_, span = float(scale.min or 0.0), float((scale.max or 0.0) - (scale.min or 0.0))
            steps.append(lambda v: (v - low_) / span)
    return steps


def _text_source(feature: Feature, where: str) -> Callable[[Columns], np.ndarray]:
    """Categories of a raw column as a numpy array (text or float), missing values imputed."""
    assert feature.one_hot is not None  # only for one_hot features
    name = feature.column or feature.name
    numeric = feature.one_hot.numeric
    impute = feature.impute.value if feature.impute is not None else None

    def read(columns: Columns) -> np.ndarray:
        values = columns[name]
        if numeric:
            numbers = _numbers(values, name, where)
            if impute is not None:
                numbers = np.where(np.isnan(numbers), float(impute), numbers)
            return numbers
        text, missing = _text(values, name, where)
        if missing is not None:
            if impute is None:
                row = int(np.flatnonzero(missing)[0])
                raise PreprocessingError(where, "one_hot", f"missing value in row {row}; "
                                         "declare impute to fill it")  # fmt: skip
            text = np.where(missing, str(impute), text)
        return text

    return read


def _text(values: np.ndarray, column: str, where: str) -> tuple[np.ndarray, Any]:
    """Text values and a mask of the missing ones (None when none is missing)."""
    kind = values.dtype.kind
    if kind == "U":
        return values, None
    if kind == "S":
        return np.char.decode(values, "utf-8", "replace"), None
    if kind != "O":
        raise PreprocessingError(where, None, f"expected text in column '{column}', got "
                                 f"{_kind(values)}")  # fmt: skip
    listed = values.tolist()
    missing = np.fromiter((v is None for v in listed), dtype=bool, count=len(listed))
    decoded = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in listed]
    if any(not isinstance(v, str) for v, m in zip(decoded, missing, strict=True) if not m):
        raise PreprocessingError(where, None, f"expected text in column '{column}', got "
                                 "numbers or other values")  # fmt: skip
    text = np.array(["" if v is None else v for v in decoded], dtype=np.str_)
    return text, missing if missing.any() else None


def _one_hot(
    one_hot: OneHot, where: str, start: int, read: Callable[[Columns], np.ndarray]
) -> Fill:
    declared = one_hot.categories
    order = np.argsort(np.asarray(declared, dtype=np.str_ if not one_hot.numeric else None))
    keys = np.asarray(declared)[order]
    if one_hot.numeric:
        keys = keys.astype(np.float64)
    refuse = one_hot.unknown == "error"
    stop = start + len(declared)

    def unknown(values: np.ndarray, known: np.ndarray) -> PreprocessingError:
        bad = _shown(values[np.flatnonzero(~known)[0]], one_hot.numeric)
        return PreprocessingError(where, "one_hot", f"unknown category {bad}, expected one "
                                  f"of {declared}")  # fmt: skip

    def few(columns: Columns, out: np.ndarray) -> None:  # one comparison per category
        values = read(columns)
        block = out[:, start:stop]
        for j, category in enumerate(declared):
            np.equal(values, category, out=block[:, j], casting="unsafe")
        if refuse and len(values):
            known = np.asarray(block.any(axis=1))
            if not known.all():
                raise unknown(values, known)

    def many(columns: Columns, out: np.ndarray) -> None:  # a binary search per value
        values = read(columns)
        position = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
        known = np.asarray(keys[position] == values)
        if refuse and not known.all():
            raise unknown(values, known)
        rows = np.flatnonzero(known)
        out[:, start:stop] = 0
        out[rows, start + order[position[rows]]] = 1

    return few if len(declared) <= _FEW_CATEGORIES else many


def _shown(value: Any, numeric: bool) -> str:
    if not numeric:
        return repr(str(value))
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _kind(values: np.ndarray) -> str:
    kinds: Mapping[str, str] = {"U": "text", "S": "text", "O": "text or mixed values"}
    return kinds.get(values.dtype.kind, f"{values.dtype} values")
