"""Reference profiles: what a model version's inputs and outputs looked like, in bounded size.

    Profile ── inputs:  feature -> FeatureProfile
            └─ outputs: feature -> FeatureProfile (prediction drift)
    FeatureProfile  numeric:      a uniform sample of at most SAMPLE_SIZE values, the count,
                                  the missing count, mean and standard deviation
                    categorical:  counts of at most MAX_CATEGORIES categories (the rarest
                                  lumped into OTHER)

A sample rather than a quantile sketch: the two-sample Kolmogorov-Smirnov test, PSI on the
reference's deciles and MMD all work from a sample, and a uniform sample of 2,000 values
places every quantile within about 0.02 of its rank (the DKW bound at 95%). A profile of ten
numeric features is about 200 KB of JSON, stored with the version in the registry.

Features are named after the tensors they come from: an input ``x`` with one value per row is
the feature ``x``; one with ``k`` values per row gives ``x[0]`` ... ``x[k-1]``
(:func:`columns_of`). A reference dataset's columns use the same names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_SIZE = 2_000
MAX_CATEGORIES = 100
OTHER = "(other)"
Columns = dict[str, npt.NDArray[Any]]


def columns_of(arrays: Mapping[str, npt.NDArray[Any]], max_rows: int | None = None) -> Columns:
    """Named tensors (first dimension: rows) as named feature columns.

    Args:
        arrays: tensor name -> array with the batch dimension first.
        max_rows: keep at most this many rows (the first ones).
    """
    columns: Columns = {}
    for name, array in arrays.items():
        value = np.asarray(array)
        if value.ndim == 0:
            value = value.reshape(1)
        if max_rows is not None:
            value = value[:max_rows]
        flat = value.reshape(value.shape[0], -1)
        if value.ndim == 1 or flat.shape[1] == 1:
            columns[name] = flat[:, 0]
        else:
            for i in range(flat.shape[1]):
                columns[f"{name}[{i}]"] = flat[:, i]
    return columns


def _is_numeric(values: npt.NDArray[Any]) -> bool:
    return values.dtype.kind in "iuf"


@dataclass(slots=True)
class FeatureProfile:
    """One feature of a reference: a bounded sample (numeric) or category counts."""

    kind: str  # numeric | categorical
    count: int
    missing: int = 0
    mean: float = 0.0
    std: float = 0.0
    sample: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, values: npt.ArrayLike, categorical: bool = False,
        rows: npt.NDArray[np.intp] | None = None,
    ) -> FeatureProfile:  # fmt: skip
        """Profile one column (numbers are numeric unless ``categorical``); ``rows`` picks
        the sampled rows (the same rows for every feature keeps them rows of one table,
        which the multivariate test needs). Missing values stay in the sample as NaN."""
        array = np.asarray(values).ravel()
        if categorical or not _is_numeric(array):
            counts = Counter(str(v) for v in array.tolist())
            kept = dict(counts.most_common(MAX_CATEGORIES))
            rest = sum(counts.values()) - sum(kept.values())
            if rest:
                kept[OTHER] = kept.get(OTHER, 0) + rest
            return cls("categorical", int(array.size), counts=kept)
        numbers = array.astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        sample = numbers if rows is None else numbers[rows]
        return cls(
            "numeric", int(array.size), int(array.size - finite.size),
            float(finite.mean()) if finite.size else 0.0,
            float(finite.std()) if finite.size else 0.0,
            [float(v) for v in sample],
        )  # fmt: skip

    def reference(self, max_values: int = 10_000) -> npt.NDArray[Any]:
        """Values to test against: the sample, or the counts scaled to ``max_values``."""
        if self.kind == "numeric":
            return np.asarray(self.sample, dtype=np.float64)
        total = sum(self.counts.values()) or 1
        scale = min(1.0, max_values / total)  # keeps the shares; the test sees fewer rows
        names = list(self.counts)
        repeats = [max(1, round(c * scale)) for c in self.counts.values()]
        return np.repeat(np.asarray(names, dtype=object), repeats)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "numeric":  # JSON has no NaN: a missing value is null
            sample = [v if np.isfinite(v) else None for v in self.sample]
            return {"kind": self.kind, "count": self.count, "missing": self.missing,
                    "mean": self.mean, "std": self.std, "sample": sample}  # fmt: skip
        return {"kind": self.kind, "count": self.count, "counts": self.counts}

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeatureProfile:
        """Raises ValueError naming the feature when the stored shape is wrong."""
        kind = data.get("kind")
        if kind == "numeric" and isinstance(data.get("sample"), list):
            return cls("numeric", int(data.get("count", 0)), int(data.get("missing", 0)),
                       float(data.get("mean", 0.0)), float(data.get("std", 0.0)),
                       [np.nan if v is None else float(v) for v in data["sample"]])  # fmt: skip
        if kind == "categorical" and isinstance(data.get("counts"), dict):
            counts = {str(k): int(v) for k, v in data["counts"].items()}
            return cls("categorical", int(data.get("count", 0)), counts=counts)
        raise ValueError(
            f"profile.{name}: expected {{'kind': 'numeric', 'sample': [...]}} or "
            f"{{'kind': 'categorical', 'counts': {{...}}}}, got keys {sorted(data)}"
        )


@dataclass(slots=True)
class Profile:
    """A model version's reference: its input features and, optionally, its outputs."""

    inputs: dict[str, FeatureProfile]
    outputs: dict[str, FeatureProfile] = field(default_factory=dict)
    rows: int = 0

    @classmethod
    def of(
        cls, inputs: Mapping[str, npt.ArrayLike],
        outputs: Mapping[str, npt.ArrayLike] | None = None, categorical: Collection[str] = (),
        seed: int | None = 0,
    ) -> Profile:  # fmt: skip
        """Profile feature columns (all of one length).

        Raises:
            ValueError: no input columns, or columns of different lengths.
        """
        if not inputs:
            raise ValueError("reference: expected at least one input column, got none")
        columns = {**inputs, **(outputs or {})}
        lengths = {name: np.asarray(v).ravel().size for name, v in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"reference: expected columns of one length, got {lengths}")

        size = next(iter(lengths.values()))
        rows = None
        if size > SAMPLE_SIZE:
            rows = np.sort(np.random.default_rng(seed).choice(size, SAMPLE_SIZE, replace=False))

        def profile(data: Mapping[str, npt.ArrayLike]) -> dict[str, FeatureProfile]:
            return {n: FeatureProfile.of(v, n in categorical, rows) for n, v in data.items()}

        return cls(profile(inputs), profile(outputs or {}), size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` reads it back."""
        return {
            "rows": self.rows,
            "inputs": {n: f.to_dict() for n, f in self.inputs.items()},
            "outputs": {n: f.to_dict() for n, f in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Raises ValueError naming the field that is missing or malformed."""
        inputs = data.get("inputs")
        outputs = data.get("outputs") or {}
        if not isinstance(inputs, dict) or not inputs or not isinstance(outputs, dict):
            raise ValueError("profile.inputs: expected an object of feature profiles")
        return cls(
            {n: FeatureProfile.from_dict(n, f) for n, f in inputs.items()},
            {n: FeatureProfile.from_dict(n, f) for n, f in outputs.items()},
            int(data.get("rows", 0)),
        )
