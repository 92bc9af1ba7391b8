"""A compiled preprocessing block, applied the same way on every path.

    Preprocessor
    ├── columns:  the raw columns a request (or a job's table) carries, by name
    ├── features: the model input's column names, in order (``country=DE`` for a one-hot)
    └── apply(raw) -> the model's inputs: the filled input, plus any other model input as sent

Online (:func:`model_inputs`, called by the data plane), batch jobs
(:class:`inferd.preprocess.runtime.PreprocessedRuntime`) and the bench all call
:meth:`Preprocessor.apply`, so the same rows give the same tensor everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from inferd.errors import PreprocessingError
from inferd.serving.validation import validate_request
from inferd.types import InferenceRequest, Signature, TensorSpec

Columns = Mapping[str, np.ndarray]
Fill = Callable[[Columns, np.ndarray], None]  # writes one feature's column(s) of the output

_DATATYPE = {"number": "FP64", "integer": "INT64", "text": "BYTES"}


@dataclass(frozen=True, slots=True)
class RawColumn:
    """A raw column the features read: ``number``, ``integer`` (categories) or ``text``.

    ``optional``: every feature reading it imputes, so a request may leave it out (each of
    its values is then missing, and imputed).
    """

    name: str
    kind: str
    optional: bool = False

    def absent(self, rows: int) -> np.ndarray:
        """The column of a request that left it out: every value missing."""
        if self.kind == "text":
            return np.full(rows, None, dtype=object)
        return np.full(rows, np.nan)

    def spec(self) -> TensorSpec:
        """How the column appears in the model's metadata: one value per row."""
        return TensorSpec(self.name, _DATATYPE[self.kind], (-1,))


@dataclass(frozen=True, slots=True)
class Preprocessor:
    """Raw named columns in, the model's inputs out (see :mod:`inferd.preprocess.compile`)."""

    target: TensorSpec
    columns: tuple[RawColumn, ...]
    features: tuple[str, ...]
    fills: tuple[Fill, ...]
    passthrough: tuple[TensorSpec, ...] = ()

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """What a request carries: the raw columns, then the model inputs sent as they are."""
        return tuple(c.spec() for c in self.columns) + self.passthrough

    def signature(self, model: Signature) -> Signature:
        """The model's signature as callers see it: raw columns in, the model's outputs."""
        return Signature(self.input_specs, model.outputs)

    def apply(self, raw: Columns) -> dict[str, np.ndarray]:
        """The model's inputs from one batch of raw columns.

        Raises:
            PreprocessingError: a missing or unknown column, columns of different lengths,
                or a value a rule refuses; naming the feature and the rule.
        """
        columns = self._columns(raw)
        rows = len(next(iter(columns.values())))
        width = len(self.features)
        out = np.empty((rows, width), dtype=self.target.dtype)
        with np.errstate(all="ignore"):  # log(0), x/0: -inf, inf and NaN are values here
            for fill in self.fills:
                fill(columns, out)
        inputs = {self.target.name: out if len(self.target.shape) == 2 else out[:, 0]}
        for spec in self.passthrough:
            inputs[spec.name] = raw[spec.name]
        return inputs

    def named(self, raw: Columns) -> dict[str, np.ndarray]:
        """The declared features as named columns (for inspection and drift tooling)."""
        out = self.apply(raw)[self.target.name].reshape(-1, len(self.features))
        return {name: out[:, i] for i, name in enumerate(self.features)}

    def _columns(self, raw: Columns) -> dict[str, np.ndarray]:
        expected = [c.name for c in self.columns]
        allowed = set(expected) | {s.name for s in self.passthrough}
        for name in raw:
            if name not in allowed:
                raise PreprocessingError("inputs", None, f"unknown input '{name}', expected "
                                         f"the raw columns {expected}")  # fmt: skip
        required = [c.name for c in self.columns if not c.optional]
        missing = [n for n in [*required, *(s.name for s in self.passthrough)] if n not in raw]
        present = [n for n in expected if n in raw]
        if missing or not present:
            raise PreprocessingError("inputs", None, f"missing {missing or expected}, expected "
                                     f"the raw columns {expected}")  # fmt: skip
        columns: dict[str, np.ndarray] = {}
        rows = 0
        for name in present:
            values = _one_per_row(name, np.asarray(raw[name]))
            if not columns:
                rows = len(values)
            elif len(values) != rows:
                raise PreprocessingError(f"column '{name}'", None, f"expected {rows} rows like "
                                         f"'{present[0]}', got {len(values)}")  # fmt: skip
            columns[name] = values
        for column in self.columns:
            if column.name not in columns:  # optional: imputed
                columns[column.name] = column.absent(rows)
        return columns


def _one_per_row(name: str, values: np.ndarray) -> np.ndarray:
    if values.ndim == 0:
        return values.reshape(1)
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim != 1:
        shape = list(values.shape)
        raise PreprocessingError(f"column '{name}'", None, "expected one value per row (shape "
                                 f"[rows] or [rows, 1]), got shape {shape}")  # fmt: skip
    return values


def model_inputs(
    request: InferenceRequest, signature: Signature, preprocessor: Preprocessor | None
) -> dict[str, np.ndarray]:
    """The checked model inputs of a request: preprocessed first when the version declares it.

    Raises:
        PreprocessingError: the raw columns fail the declared preprocessing.
        InvalidInput: the resulting inputs do not fit the model's signature.
    """
    if preprocessor is None:
        return validate_request(request, signature)
    inputs = preprocessor.apply(request.inputs)
    return validate_request(dataclasses.replace(request, inputs=inputs), signature)
