"""How far a shadow version's answers agree with the primary's, as mergeable sums.

For every output both versions return with the same shape:

- labels: integer, boolean and bytes/string outputs are compared row by row (a row agrees
  when all its elements are equal); float outputs with a class axis (last dimension > 1)
  are compared by their argmax along it. ``label_matches / label_rows`` is the exact-match rate.
- numbers: every finite float element pair adds ``|primary - shadow|`` to a sum, so
  ``abs_diff_sum / values`` is the mean absolute difference (the maximum is kept too).

An output missing on one side or shaped differently makes the request *incomparable*: it is
counted, never guessed at. :class:`Agreement` holds the sums of one (primary, shadow) version
pair; every field adds (the maximum maxes, the latency aggregates merge), so the rows each
serving process flushes merge exactly into the pair's totals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferd.stats import Aggregate

_COUNTS = ("mirrored", "compared", "failed", "dropped", "incomparable", "label_rows",
           "label_matches", "values")  # fmt: skip
_LATENCY_CAPACITY = 500  # reservoir per pair and side: enough for a p99 to read
Layout = tuple[tuple[str, tuple[int, ...], np.dtype[Any], np.dtype[Any]], ...]


@dataclass(slots=True)
class Comparison:
    """One request's agreement: label rows and matches, numeric element count and sums."""

    comparable: bool = True
    label_rows: int = 0
    label_matches: int = 0
    values: int = 0
    abs_diff_sum: float = 0.0
    max_abs_diff: float = 0.0


def compare(primary: Mapping[str, np.ndarray], shadow: Mapping[str, np.ndarray]) -> Comparison:
    """Compare the outputs of one request (the primary's names decide what is compared)."""
    result = Comparison()
    for name, mine in primary.items():
        theirs = shadow.get(name)
        if theirs is None or np.shape(theirs) != np.shape(mine):
            return Comparison(comparable=False)
        a, b = np.asarray(mine), np.asarray(theirs)
        kinds = {a.dtype.kind, b.dtype.kind}
        if kinds == {"f"}:
            _numbers(a, b, result)
            if a.ndim >= 2 and a.shape[-1] > 1:  # a class axis: compare the argmax
                _labels(a.argmax(axis=-1), b.argmax(axis=-1), result)
        elif kinds & {"f", "c"}:
            return Comparison(comparable=False)  # a label on one side, a score on the other
        else:
            _labels(a, b, result)
    return result


def layout(primary: Mapping[str, np.ndarray], shadow: Mapping[str, np.ndarray]) -> Layout | None:
    """What copies must share for their outputs to be compared together, concatenated along
    the batch dimension (:func:`compare_group`): each output's name, the shape past the first
    dimension and both dtypes. None when this copy's outputs must be compared alone (an
    output missing, shaped differently on the two sides, or a scalar)."""
    key = []
    for name, mine in primary.items():
        theirs = shadow.get(name)
        if theirs is None:
            return None
        shape = np.shape(mine)
        if not shape or shape != np.shape(theirs):
            return None
        key.append((name, shape[1:], np.asarray(mine).dtype, np.asarray(theirs).dtype))
    return tuple(key)


def compare_group(
    primaries: Sequence[Mapping[str, np.ndarray]], shadows: Sequence[Mapping[str, np.ndarray]]
) -> Comparison:
    """The sums :func:`compare` would give copy by copy, added, for copies of one
    :func:`layout`: every measure is per row or per element, so comparing the outputs
    concatenated gives the same sums at one comparison's cost."""
    if len(primaries) == 1:
        return compare(primaries[0], shadows[0])
    names = list(primaries[0])
    return compare(
        {name: np.concatenate([p[name] for p in primaries]) for name in names},
        {name: np.concatenate([s[name] for s in shadows]) for name in names},
    )


def _labels(a: np.ndarray, b: np.ndarray, into: Comparison) -> None:
    if a.ndim == 0:
        a, b = a.reshape(1), b.reshape(1)
    equal = a == b
    rows = equal.reshape(equal.shape[0], -1).all(axis=1) if equal.ndim > 1 else equal
    into.label_rows += int(rows.shape[0])
    into.label_matches += int(np.count_nonzero(rows))


def _numbers(a: np.ndarray, b: np.ndarray, into: Comparison) -> None:
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    finite = diff[np.isfinite(diff)]
    if finite.size:
        into.values += int(finite.size)
        into.abs_diff_sum += float(finite.sum())
        into.max_abs_diff = max(into.max_abs_diff, float(finite.max()))


class Agreement:
    """Cumulative agreement of one (primary version, shadow version) pair in one process."""

    __slots__ = ("abs_diff_sum", "changes", "max_abs_diff", "primary_ms", "shadow_ms", *_COUNTS)

    def __init__(self) -> None:
        self.changes = 0  # grows with every event: what a flush compares (not stored)
        self.mirrored = 0  # taken to run on the shadow
        self.compared = 0  # answered by both and comparable
        self.failed = 0  # the shadow raised (never seen by the client)
        self.dropped = 0  # sampled, never run: the queue full, no room, or the shadow removed
        self.incomparable = 0  # answered, but outputs differ in names or shapes
        self.label_rows = 0
        self.label_matches = 0
        self.values = 0
        self.abs_diff_sum = 0.0
        self.max_abs_diff = 0.0
        self.shadow_ms = Aggregate(_LATENCY_CAPACITY)
        self.primary_ms = Aggregate(_LATENCY_CAPACITY)

    def take(self, count: int = 1) -> None:
        """Count copies taken to run on the shadow."""
        self.mirrored += count
        self.changes += count

    def drop(self, taken: bool = False) -> None:
        """Count one sampled copy dropped: refused or discarded while waiting, or ``taken``
        (already counted as mirrored) and then refused by the shadow version."""
        self.dropped += 1
        self.mirrored -= 1 if taken else 0
        self.changes += 1

    def fail(self) -> None:
        """Count one shadow request that raised."""
        self.failed += 1
        self.changes += 1

    def add(self, comparison: Comparison, primary_ms: float, shadow_ms: float) -> None:
        """Count one answered shadow request."""
        self.shadow_ms.add(shadow_ms)
        self.primary_ms.add(primary_ms)
        self._tally(comparison, 1)

    def add_group(
        self, comparison: Comparison, primary_ms: Sequence[float], shadow_ms: float
    ) -> None:
        """Count copies answered together, ``comparison`` being their summed
        :func:`compare_group`; they share the shadow's latency."""
        count = len(primary_ms)
        if count == 1:
            self.add(comparison, primary_ms[0], shadow_ms)
            return
        self.shadow_ms.add_many([shadow_ms] * count)
        self.primary_ms.add_many(primary_ms)
        self._tally(comparison, count)

    def _tally(self, comparison: Comparison, count: int) -> None:
        self.changes += count
        if not comparison.comparable:
            self.incomparable += count
            return
        self.compared += count
        self.label_rows += comparison.label_rows
        self.label_matches += comparison.label_matches
        self.values += comparison.values
        self.abs_diff_sum += comparison.abs_diff_sum
        self.max_abs_diff = max(self.max_abs_diff, comparison.max_abs_diff)

    @property
    def total(self) -> int:
        """Everything sampled: mirrored (and since answered, failed or waiting) or dropped."""
        return self.mirrored + self.dropped

    def merge(self, other: Agreement) -> Agreement:
        """A new agreement of both (counts and sums add, latency reservoirs merge)."""
        merged = Agreement()
        merged.changes = self.changes + other.changes
        for name in _COUNTS:
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        merged.abs_diff_sum = self.abs_diff_sum + other.abs_diff_sum
        merged.max_abs_diff = max(self.max_abs_diff, other.max_abs_diff)
        merged.shadow_ms = self.shadow_ms.merge(other.shadow_ms)
        merged.primary_ms = self.primary_ms.merge(other.primary_ms)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the registry flush); :meth:`from_dict` reads it back."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        data["abs_diff_sum"] = self.abs_diff_sum
        data["max_abs_diff"] = self.max_abs_diff
        data["shadow_ms"] = self.shadow_ms.to_dict()
        data["primary_ms"] = self.primary_ms.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Agreement:
        """Raises ValueError naming a missing or inconsistent field."""
        fields = (*_COUNTS, "abs_diff_sum", "shadow_ms", "primary_ms")
        missing = [name for name in fields if name not in data]
        if missing:
            raise ValueError(f"shadow agreement: expected fields {list(fields)}, missing {missing}")
        agreement = cls()
        for name in _COUNTS:
            setattr(agreement, name, int(data[name]))
        agreement.abs_diff_sum = float(data["abs_diff_sum"])
        agreement.max_abs_diff = float(data.get("max_abs_diff", 0.0))
        agreement.shadow_ms = Aggregate.from_dict(data["shadow_ms"])
        agreement.primary_ms = Aggregate.from_dict(data["primary_ms"])
        return agreement

    def summary(self) -> dict[str, Any]:
        """The pair's figures as the API shows them (rates None until there is data)."""
        return {
            "sampled": self.total, "mirrored": self.mirrored, "compared": self.compared,
            "failed": self.failed, "dropped": self.dropped, "incomparable": self.incomparable,
            "label_rows": self.label_rows,
            "exact_match_rate": _ratio(self.label_matches, self.label_rows),
            "values": self.values,
            "mean_abs_diff": _ratio(self.abs_diff_sum, self.values),
            "max_abs_diff": self.max_abs_diff if self.values else None,
            "shadow_latency_ms": _latency(self.shadow_ms),
            "primary_latency_ms": _latency(self.primary_ms),
        }  # fmt: skip


def _ratio(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _latency(aggregate: Aggregate) -> dict[str, float | None]:
    if not aggregate.count:
        return {"mean": None, "p50": None, "p99": None}
    sample = np.asarray(aggregate.reservoir)
    return {
        "mean": aggregate.total / aggregate.count,
        "p50": float(np.quantile(sample, 0.5)),
        "p99": float(np.quantile(sample, 0.99)),
    }
