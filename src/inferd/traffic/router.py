"""Deterministic, sticky assignment of routing units to variants.

A unit id (a user, a session, a request) is hashed with the experiment's salt into one of
:data:`BUCKETS` buckets, and a table maps each bucket to a variant. The table is a pure function
of the salt, the variant count and the history of weights, so every worker process and every
replica computes the same table from what the registry holds, and a unit lands on the same
variant everywhere.

The table is built so that changing the weights moves as few buckets as possible:

- the first weights give each variant a number of buckets by largest remainder (exact to one
  bucket in 10,000), taken as consecutive runs of a fixed, salted permutation of the buckets;
- each later change computes the new counts the same way; a variant over its new count gives
  up its surplus (the buckets it holds that come last in the permutation) and the variants under
  theirs take those, in permutation order. Only the surplus moves, which is the least any
  reassignment can move (half the L1 distance between the old and the new counts).

So a canary going 1% -> 5% -> 25% keeps every unit it already had, and an experiment whose
weights change keeps most units where they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from inferd.errors import InvalidInput

BUCKETS = 10_000
_WEIGHT_TOLERANCE = 1e-9


def unit_bucket(salt: str, unit: str) -> int:
    """The bucket of ``unit`` under ``salt``: stable across processes, replicas and releases."""
    digest = hashlib.blake2b(f"{salt}\x1f{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def check_weights(weights: Sequence[float], field: str = "weights") -> list[float]:
    """Weights as floats, refused unless each is in [0, 1] and they sum to 1.

    Raises:
        InvalidInput: naming the field, with the weights and their sum.
    """
    values = [float(w) for w in weights]
    if len(values) < 1:
        raise InvalidInput(field, "at least one weight", "none")
    for index, value in enumerate(values):
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"{field}[{index}]", "a weight between 0 and 1", repr(value))
    total = sum(values)
    if abs(total - 1.0) > _WEIGHT_TOLERANCE:
        raise InvalidInput(field, "weights that sum to 1", f"{values} (sum {total:.6g})")
    return values


def bucket_counts(weights: Sequence[float]) -> npt.NDArray[np.int64]:
    """Buckets per variant for ``weights``: largest remainder, summing to :data:`BUCKETS`."""
    exact = np.asarray(weights, dtype=np.float64) * BUCKETS
    counts = np.floor(exact).astype(np.int64)
    short = BUCKETS - int(counts.sum())
    # Ties go to the earlier variant (the stable sort), so the result is deterministic.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def _permutation(salt: str) -> npt.NDArray[np.int64]:
    seed = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "big")
    return np.random.Generator(np.random.PCG64(seed)).permutation(BUCKETS)


def allocation(salt: str, history: Sequence[Sequence[float]]) -> npt.NDArray[np.int16]:
    """The bucket -> variant index table after each weight vector of ``history`` in turn.

    Args:
        salt: the experiment's (or rollout's) salt.
        history: the weights as they were set, oldest first; every vector has one weight per
            variant, and the variants do not change during an experiment.

    Raises:
        InvalidInput: no history, vectors of different lengths, or weights that do not sum to 1.
    """
    if not history:
        raise InvalidInput("weights", "at least one weight vector", "none")
    size = len(history[0])
    if size > np.iinfo(np.int16).max:
        raise InvalidInput("variants", "at most 32,767 variants", str(size))
    permutation = _permutation(salt)
    rank = np.empty(BUCKETS, dtype=np.int64)
    rank[permutation] = np.arange(BUCKETS)
    counts = bucket_counts(check_weights(history[0]))
    table = np.empty(BUCKETS, dtype=np.int16)
    table[permutation] = np.repeat(np.arange(size, dtype=np.int16), counts)
    for index, weights in enumerate(history[1:], start=1):
        if len(weights) != size:
            raise InvalidInput(
                f"weights[{index}]", f"{size} weights (one per variant)", str(len(weights))
            )
        table = _move(table, rank, counts, bucket_counts(check_weights(weights)))
        counts = np.bincount(table, minlength=size).astype(np.int64)
    return table


def _move(
    table: npt.NDArray[np.int16],
    rank: npt.NDArray[np.int64],
    old: npt.NDArray[np.int64],
    new: npt.NDArray[np.int64],
) -> npt.NDArray[np.int16]:
    table = table.copy()
    freed: list[npt.NDArray[np.int64]] = []
    for variant in np.flatnonzero(old > new):
        held = np.flatnonzero(table == variant)
        surplus = int(old[variant] - new[variant])
        freed.append(held[np.argsort(rank[held])[-surplus:]])
    if not freed:
        return table
    pool = np.concatenate(freed)
    pool = pool[np.argsort(rank[pool])]
    start = 0
    for variant in np.flatnonzero(new > old):
        need = int(new[variant] - old[variant])
        table[pool[start : start + need]] = variant
        start += need
    return table


class Splitter:
    """Routes unit ids to named variants with a table built by :func:`allocation`.

    Args:
        salt: the experiment's salt; two experiments with different salts split independently.
        variants: the variant names, in the order of each weight vector.
        history: the weight vectors as they were set, oldest first.

    Raises:
        InvalidInput: see :func:`allocation`; or fewer names than weights.
    """

    def __init__(
        self, salt: str, variants: Sequence[str], history: Sequence[Sequence[float]]
    ) -> None:
        if history and len(variants) != len(history[0]):
            raise InvalidInput(
                "variants", f"{len(history[0])} variants (one per weight)", str(len(variants))
            )
        self.salt = salt
        self.variants = tuple(variants)
        self._table = allocation(salt, history)
        # A list indexes ~3x faster than a numpy array and returns a plain int: variant() runs
        # once per routed request.
        self._index: list[int] = self._table.tolist()

    def variant(self, unit: str) -> str:
        """The variant ``unit`` is assigned to."""
        return self.variants[self._index[unit_bucket(self.salt, unit)]]

    def shares(self) -> dict[str, float]:
        """Each variant's share of the buckets (its weight, to one bucket in 10,000)."""
        counts = np.bincount(self._table, minlength=len(self.variants))
        return {
            name: int(count) / BUCKETS for name, count in zip(self.variants, counts, strict=True)
        }
