"""The shared pieces of every comparison: the level check and the lift interval."""

from __future__ import annotations

import math

import pytest

from inferd.stats.comparison import check_alpha, lift_of, log_ratio_interval


def test_alpha_must_be_a_probability() -> None:
    assert check_alpha(0.05) == 0.05
    for bad in (0.0, 1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="alpha: expected a level strictly between"):
            check_alpha(bad)


def test_lift_and_its_log_interval() -> None:
    assert lift_of(0.0, 1.0) is None
    assert lift_of(2.0, 3.0) == 0.5
    low, high = log_ratio_interval(2.0, 0.1, 3.0, 0.1, 0.05)  # type: ignore[misc]
    sd = math.sqrt((0.1 / 3) ** 2 + (0.1 / 2) ** 2)
    assert low == pytest.approx(1.5 * math.exp(-1.959963984540054 * sd) - 1, rel=1e-12)
    assert high == pytest.approx(1.5 * math.exp(1.959963984540054 * sd) - 1, rel=1e-12)
    assert log_ratio_interval(-1.0, 0.1, 3.0, 0.1, 0.05) is None
