"""AdaptiveLimit on a driven clock: when it grows, shrinks, holds, and where it settles."""

import math

import pytest

from inferd.resilience.concurrency import AdaptiveLimit, LimitBounds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(initial: int = 16, low: int = 4, high: int = 1000) -> tuple[AdaptiveLimit, Clock]:
    clock = Clock()
    return AdaptiveLimit(LimitBounds(initial, low, high, tolerance=2.0, window_s=0.1), clock), clock


def window(limit: AdaptiveLimit, clock: Clock, latency: float, queued: float, used: int) -> bool:
    """One window of ten samples with ``used`` requests held at its busiest."""
    limit.used(used)
    updated = [limit.sample(latency, queued) for _ in range(9)]
    clock.now += 0.1
    updated.append(limit.sample(latency, queued))
    assert updated[:-1] == [False] * 9  # nothing changes inside a window
    return updated[-1]


def test_latency_within_tolerance_grows_the_limit_by_about_its_square_root() -> None:
    limit, clock = limiter(initial=16)
    assert window(limit, clock, latency=0.010, queued=0.004, used=16)  # 10 ms vs 6 ms no-load
    # smoothed halfway to 16 + sqrt(16) = 20
    assert limit.limit == 18
    assert limit.latency_s == pytest.approx(0.010)
    assert limit.no_load_s == pytest.approx(0.006)


def test_an_unused_limit_holds_still() -> None:
    limit, clock = limiter(initial=16)
    assert window(limit, clock, latency=0.001, queued=0.0, used=7)  # under half of 16 held
    assert limit.limit == 16


def test_queueing_beyond_tolerance_shrinks_it_in_proportion() -> None:
    limit, clock = limiter(initial=100)
    # 40 ms of which 30 queued: 4x the no-load 10 ms, twice the tolerance -> gradient 0.5
    window(limit, clock, latency=0.040, queued=0.030, used=100)
    assert limit.limit == 75  # halfway from 100 to 50


def test_it_never_leaves_its_bounds() -> None:
    limit, clock = limiter(initial=10, low=8, high=12)
    for _ in range(20):
        window(limit, clock, latency=1.0, queued=0.99, used=10)
    assert limit.limit == 8
    for _ in range(20):
        window(limit, clock, latency=0.001, queued=0.0, used=12)
    assert limit.limit == 12


def test_a_saturated_batched_model_settles_between_one_and_three_full_batches() -> None:
    """A model running batches of at most 8 in 5 ms, always given as many requests as the
    limit allows: a request waits for the batches ahead of it. From far too high a limit the
    controller comes down, and then stays where a full batch is running and one is forming."""
    batch, service = 8, 0.005
    limit, clock = limiter(initial=200, low=1)
    seen = []
    for _ in range(200):
        held = limit.limit
        latency = service * math.ceil(held / batch)
        window(limit, clock, latency=latency, queued=latency - service, used=held)
        seen.append(limit.limit)
    assert all(batch <= v <= 3 * batch for v in seen[-100:]), seen[-100:]
    assert max(seen[-100:]) > 2 * batch  # it keeps probing above two batches...
    assert min(seen[-100:]) <= 2 * batch  # ...and comes back


def test_throughput_is_the_limit_over_the_latency() -> None:
    limit, clock = limiter(initial=16)
    assert limit.throughput() == math.inf  # nothing measured yet
    window(limit, clock, latency=0.008, queued=0.0, used=16)
    assert limit.throughput() == pytest.approx(limit.limit / 0.008)


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((4, 0, 10, 2.0, 0.1), "1 <= min_limit <= max_limit, got 0, 10"),
        ((4, 8, 4, 2.0, 0.1), "1 <= min_limit <= max_limit, got 8, 4"),
        ((4, 1, 10, 1.0, 0.1), "tolerance > 1, got 1.0"),
        ((4, 1, 10, 2.0, 0.0), "window_ms > 0, got 0.0"),
    ],
)
def test_bounds_are_checked_at_construction(bounds: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LimitBounds(*bounds)
