"""Per-variant tallies: exact sums, bounded uniform reservoirs, exact merges."""

from __future__ import annotations

import numpy as np

from inferd.traffic.tally import RESERVOIR, Tally, merge


def test_sums_are_exact_and_the_reservoir_is_bounded_and_uniform() -> None:
    tally = Tally(seed=1)
    values = np.arange(20_000, dtype=np.float64)
    for index, value in enumerate(values):
        tally.add(index % 10 != 0, float(value))
    data = tally.to_dict()
    assert (data["count"], data["errors"]) == (20_000, 2_000)
    assert data["latency_sum"] == values.sum()
    assert data["latency_sq"] == (values**2).sum()
    assert len(data["reservoir"]) == RESERVOIR
    # A uniform sample of 0..19999 has its mean near 10,000 (sd of the mean ~ 255).
    assert abs(np.mean(data["reservoir"]) - 10_000) < 1_500


def test_merge_adds_processes() -> None:
    one, two = Tally(seed=1), Tally(seed=2)
    one.add(True, 1.0)
    two.add(False, 3.0)
    two.add(True, 5.0)
    total = merge([one.to_dict(), two.to_dict()])
    assert (total["count"], total["errors"], total["latency_sum"], total["latency_sq"]) == (
        3, 1, 9.0, 35.0)  # fmt: skip
    assert sorted(total["reservoir"]) == [1.0, 3.0, 5.0]
    assert merge([])["count"] == 0
