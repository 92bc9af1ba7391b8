"""Percentiles from our latency histograms agree with numpy's within the bucket resolution."""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_left

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from inferd.monitoring.metrics import LATENCY_BUCKETS, Metrics
from inferd.monitoring.quantiles import histogram_quantile

BOUNDS = (*LATENCY_BUCKETS, math.inf)
QS = (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999)


def _buckets_after_observing(samples: np.ndarray) -> list[float]:
    """Observe through the request path (coalesced) and read the cumulative buckets back."""
    metrics = Metrics(CollectorRegistry())

    async def observe() -> None:
        for value in samples.tolist():
            metrics.observe_request("m", "1", "http", 200, value, 0.0)
        await asyncio.sleep(0)

    asyncio.run(observe())
    buckets = {
        float(s.labels["le"]): s.value for f in metrics.collect() for s in f.samples
        if s.name == "inferd_request_duration_seconds_bucket"
    }  # fmt: skip
    return [buckets[b] for b in BOUNDS]


def _bucket(value: float) -> tuple[float, float]:
    index = bisect_left(BOUNDS, value)  # the first bound >= value, as observe() does
    return (BOUNDS[index - 1] if index else 0.0), BOUNDS[index]


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormal(np.log(0.004), 0.8, 20_000),  # a typical small model
        lambda rng: rng.exponential(0.05, 5_000),
        lambda rng: rng.uniform(0.0001, 3.0, 1_000),
        lambda rng: np.concatenate(
            [rng.normal(0.002, 0.0002, 9_000).clip(1e-5), rng.normal(0.3, 0.05, 1_000)]
        ),  # fmt: skip  (bimodal)
    ],
    ids=["lognormal", "exponential", "uniform", "bimodal"],
)
def test_histogram_quantile_is_within_a_bucket_of_numpy(draw: object) -> None:
    samples = draw(np.random.default_rng(11))  # type: ignore[operator]
    cumulative = _buckets_after_observing(samples)
    for q in QS:
        estimate = histogram_quantile(q, BOUNDS, cumulative)
        # The q-th sample (numpy's inverted_cdf) is in the bucket the estimate is placed in.
        exact = float(np.percentile(samples, q * 100, method="inverted_cdf"))
        lower, upper = _bucket(exact)
        assert lower <= estimate <= upper, (q, exact, estimate, (lower, upper))
        # numpy's default (linear between neighbours) is within that bucket's width too,
        # widened to the neighbour's bucket when the two neighbours straddle a bound.
        linear = float(np.percentile(samples, q * 100))
        lo2, up2 = _bucket(linear)
        assert abs(estimate - linear) <= max(upper, up2) - min(lower, lo2), (q, linear, estimate)


def test_edges_follow_prometheus() -> None:
    bounds = (0.1, 1.0, math.inf)
    assert math.isnan(histogram_quantile(0.5, bounds, [0, 0, 0]))
    assert histogram_quantile(0.5, bounds, [0, 10, 10]) == pytest.approx(0.55)
    assert histogram_quantile(0.99, bounds, [0, 0, 5]) == 1.0  # in +Inf: the last finite bound
    assert histogram_quantile(0.5, bounds, [4, 4, 4]) == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"q: expected a number from 0 to 1, got 1\.5"):
        histogram_quantile(1.5, bounds, [1, 1, 1])
    with pytest.raises(ValueError, match=r"ending in \+Inf"):
        histogram_quantile(0.5, (0.1, 1.0), [1, 1])
