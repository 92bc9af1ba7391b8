"""Sticky, deterministic, minimal-movement assignment of units to variants."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from inferd.errors import InvalidInput
from inferd.traffic.router import BUCKETS, Splitter, allocation, bucket_counts, unit_bucket


def test_seventy_thirty_over_100k_distinct_units_is_within_half_a_point() -> None:
    splitter = Splitter("exp-1", ["control", "treatment"], [[0.7, 0.3]])
    routed = [splitter.variant(f"user-{i}") for i in range(100_000)]
    share = routed.count("control") / len(routed)
    assert abs(share - 0.7) < 0.005
    assert splitter.shares() == {"control": 0.7, "treatment": 0.3}


def test_a_unit_always_lands_on_one_variant() -> None:
    splitter = Splitter("exp-1", ["a", "b", "c"], [[0.2, 0.5, 0.3]])
    for unit in (f"u{i}" for i in range(2_000)):
        assert len({splitter.variant(unit) for _ in range(50)}) == 1


def test_the_table_is_the_same_in_another_process() -> None:
    code = (
        "from inferd.traffic.router import allocation, unit_bucket;"
        "t = allocation('exp-9', [[0.5, 0.5], [0.9, 0.1]]);"
        "print(t.tobytes().hex(), unit_bucket('exp-9', 'alice'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    table = allocation("exp-9", [[0.5, 0.5], [0.9, 0.1]])
    assert out == [table.tobytes().hex(), str(unit_bucket("exp-9", "alice"))]


def test_salts_split_independently() -> None:
    a = allocation("exp-a", [[0.5, 0.5]])
    b = allocation("exp-b", [[0.5, 0.5]])
    agreement = float(np.mean(a == b))
    assert 0.45 < agreement < 0.55  # independent halves agree about half the time


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([0.99, 0.01], [0.95, 0.05]),
        ([0.5, 0.3, 0.2], [0.5, 0.2, 0.3]),
        ([0.25, 0.25, 0.25, 0.25], [0.1, 0.4, 0.25, 0.25]),
        ([0.7, 0.3], [0.7, 0.3]),
    ],
)
def test_a_weight_change_moves_only_the_surplus(before: list[float], after: list[float]) -> None:
    old = allocation("exp-2", [before])
    new = allocation("exp-2", [before, after])
    moved = int(np.sum(old != new))
    least = int(np.abs(bucket_counts(after) - bucket_counts(before)).sum()) // 2
    assert moved == least
    assert np.array_equal(np.bincount(new, minlength=len(after)), bucket_counts(after))


def test_a_growing_canary_keeps_every_unit_it_had() -> None:
    steps = [[0.99, 0.01], [0.95, 0.05], [0.75, 0.25], [0.5, 0.5], [0.0, 1.0]]
    previous = None
    for n in range(1, len(steps) + 1):
        canary = set(np.flatnonzero(allocation("rollout-1", steps[:n]) == 1).tolist())
        if previous is not None:
            assert previous <= canary
        previous = canary
    assert previous is not None
    assert len(previous) == BUCKETS


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.7, 0.2], "sum 0.9"),
        ([1.2, -0.2], "weights[0]: expected a weight between 0 and 1"),
        ([], "at least one weight vector"),
    ],
)
def test_bad_weights_are_refused_with_the_sum(weights: list[float], message: str) -> None:
    history = [weights] if weights else []
    with pytest.raises(InvalidInput) as info:
        allocation("exp-3", history)
    assert message in info.value.message


def test_names_must_match_the_weights() -> None:
    with pytest.raises(InvalidInput, match="2 variants"):
        Splitter("exp-4", ["only-one"], [[0.5, 0.5]])
    with pytest.raises(InvalidInput, match=r"weights\[1\]: expected 2 weights"):
        allocation("exp-4", [[0.5, 0.5], [0.2, 0.3, 0.5]])


def test_buckets_are_spread_evenly() -> None:
    counts = np.bincount([unit_bucket("s", str(i)) for i in range(200_000)], minlength=BUCKETS)
    assert counts.min() > 0
    assert counts.max() < 60
