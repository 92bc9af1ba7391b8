"""Per-variant aggregates: exact merges, a uniform merged reservoir, a dict round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inferd.stats import Aggregate, Moments, Rate, welch


def _filled(values: np.ndarray, converted: np.ndarray, capacity: int, seed: int) -> Aggregate:
    aggregate = Aggregate(capacity, seed=seed)
    aggregate.extend(values.tolist(), converted.tolist())
    return aggregate


def test_merge_equals_the_aggregate_of_the_concatenated_data() -> None:
    rng = np.random.default_rng(1)
    # Whole-number values keep every sum exact, so the moments must match to the bit.
    a, b = rng.integers(0, 1000, 3000).astype(float), rng.integers(0, 1000, 2000).astype(float)
    ca, cb = rng.random(3000) < 0.1, rng.random(2000) < 0.2
    merged = _filled(a, ca, 500, 1).merge(_filled(b, cb, 500, 2))
    whole = _filled(np.concatenate([a, b]), np.concatenate([ca, cb]), 500, 3)
    assert merged.moments() == whole.moments()
    assert merged.rate() == whole.rate() == Rate(int(ca.sum() + cb.sum()), 5000)
    assert len(merged.reservoir) == 500
    assert set(merged.reservoir) <= set(a) | set(b)


def test_merge_of_real_valued_data_matches_to_rounding() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(100, 15, 1000), rng.normal(95, 15, 700)
    merged = _filled(a, a > 120, 50, 1).merge(_filled(b, b > 120, 50, 2)).moments()
    whole = Moments.of(np.concatenate([a, b]))
    assert merged.n == whole.n
    assert merged.total == pytest.approx(whole.total, rel=1e-12)
    assert merged.total_sq == pytest.approx(whole.total_sq, rel=1e-12)


def test_a_merged_reservoir_samples_each_side_by_its_share_of_the_data() -> None:
    # 9,000 zeros and 1,000 ones: a uniform sample of the union is about 10% ones.
    shares = []
    for seed in range(20):
        zeros = _filled(np.zeros(9000), np.zeros(9000, dtype=bool), 1000, seed)
        ones = _filled(np.ones(1000), np.zeros(1000, dtype=bool), 1000, seed + 100)
        shares.append(np.mean(zeros.merge(ones).reservoir))
    # Hypergeometric sd of one share is about 0.009; of the mean of 20, about 0.002.
    assert abs(np.mean(shares) - 0.1) < 0.01


def test_merging_reservoirs_of_different_sizes_keeps_the_smaller() -> None:
    small = _filled(np.zeros(500), np.zeros(500, dtype=bool), 100, 1)
    large = _filled(np.ones(500), np.zeros(500, dtype=bool), 300, 2)
    for merged in (small.merge(large), large.merge(small)):
        assert merged.capacity == len(merged.reservoir) == 100
        assert merged.count == 1000


def test_the_reservoir_is_a_uniform_sample_of_one_stream() -> None:
    aggregate = Aggregate(capacity=1000, seed=9)
    aggregate.extend(np.arange(50_000, dtype=float).tolist())
    assert len(aggregate.reservoir) == 1000
    assert abs(np.mean(aggregate.reservoir) - 25_000) < 2_500  # sd of the mean ~ 456


def test_the_dict_round_trip_is_json_and_feeds_the_tests() -> None:
    rng = np.random.default_rng(3)
    aggregate = _filled(rng.normal(5, 1, 300), rng.random(300) < 0.3, 100, 1)
    data = json.loads(json.dumps(aggregate.to_dict()))
    again = Aggregate.from_dict(data, seed=4)
    assert again.to_dict() == aggregate.to_dict()
    assert welch(again.moments(), aggregate.moments()).p_value == pytest.approx(1.0)


def test_bad_input_is_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="capacity: expected a reservoir size >= 1, got 0"):
        Aggregate(0)
    data = Aggregate(capacity=10).to_dict()
    with pytest.raises(ValueError, match=r"missing \['total_sq'\]"):
        Aggregate.from_dict({k: v for k, v in data.items() if k != "total_sq"})
    with pytest.raises(ValueError, match=r"aggregate\.reservoir: expected min\(count, capacity\)"):
        Aggregate.from_dict({**data, "count": 3})
    with pytest.raises(ValueError, match=r"aggregate\.conversions: expected 0\.\.count \(0\)"):
        Aggregate.from_dict({**data, "conversions": 1})
    with pytest.raises(ValueError, match=r"converted: expected one flag per value \(2\), got 1"):
        Aggregate().extend([1.0, 2.0], [True])


def test_add_many_keeps_the_moments_that_add_keeps() -> None:
    values = np.random.default_rng(5).normal(50, 10, 5_000)
    one_by_one, at_once = Aggregate(capacity=100, seed=1), Aggregate(capacity=100, seed=1)
    for value in values[:30]:  # some before, so that the numbering continues
        one_by_one.add(float(value))
        at_once.add(float(value))
    for value in values[30:]:
        one_by_one.add(float(value))
    at_once.add_many(values[30:2_000].tolist())
    at_once.add_many([])
    at_once.add_many(values[2_000:].tolist())
    assert (at_once.count, at_once.conversions) == (one_by_one.count, 0)
    assert at_once.total == pytest.approx(one_by_one.total, rel=1e-12)
    assert at_once.total_sq == pytest.approx(one_by_one.total_sq, rel=1e-12)
    assert len(at_once.reservoir) == 100
    assert set(at_once.reservoir) <= set(values.tolist())


def test_add_many_fills_the_reservoir_with_the_first_values() -> None:
    aggregate = Aggregate(capacity=10, seed=2)
    aggregate.add_many([1.0, 2.0, 3.0])
    aggregate.add_many([4.0, 5.0])
    assert aggregate.reservoir == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_add_many_keeps_each_observation_with_the_same_chance() -> None:
    # Algorithm R keeps each of n observations with probability capacity / n, wherever it
    # falls: first in the reservoir, in the first batch, or late in a later batch.
    capacity, n, runs = 10, 100, 3_000
    kept = np.zeros(n)
    for seed in range(runs):
        aggregate = Aggregate(capacity=capacity, seed=seed)
        aggregate.add(0.0)
        aggregate.add_many([float(i) for i in range(1, 40)])
        aggregate.add_many([float(i) for i in range(40, n)])
        kept[[int(v) for v in aggregate.reservoir]] += 1
    shares = kept / runs
    assert np.abs(shares - capacity / n).max() < 0.025  # sd of each share ~ 0.0055
    first, last = shares[:50].mean(), shares[50:].mean()
    assert abs(first - last) < 0.01
