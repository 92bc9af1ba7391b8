"""CircuitBreaker's state machine on a fake clock."""

from inferd.resilience.breaker import CircuitBreaker, CircuitState
from inferd.resilience.config import BreakerConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(**overrides: object) -> tuple[CircuitBreaker, Clock, list[CircuitState]]:
    fields: dict[str, object] = {"window_s": 10, "min_requests": 4, "error_rate": 0.5,
                                 "open_s": 5, "half_open_probes": 2, **overrides}  # fmt: skip
    clock = Clock()
    seen: list[CircuitState] = []
    return CircuitBreaker(BreakerConfig.model_validate(fields), clock, seen.append), clock, seen


def test_opens_on_error_rate_only_after_min_requests() -> None:
    breaker, _, seen = make()
    for ok in (False, False, False):
        assert breaker.allow()
        breaker.record(ok, 0.001)
    assert breaker.state is CircuitState.CLOSED  # 3 < min_requests
    breaker.record(True, 0.001)  # 3 of 4 failed
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert seen == [CircuitState.OPEN]


def test_stays_closed_below_the_error_rate() -> None:
    breaker, _, _ = make()
    for ok in (True, True, True, False, True, False):
        breaker.record(ok, 0.001)
    assert breaker.state is CircuitState.CLOSED  # 2 of 6


def test_old_outcomes_leave_the_window() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record(False, 0.001)
    clock.now += 11  # those three are out of the window
    breaker.record(False, 0.001)
    assert breaker.state is CircuitState.CLOSED
    for _ in range(3):
        breaker.record(True, 0.001)
    assert breaker.state is CircuitState.CLOSED


def test_half_open_probes_close_it_again() -> None:
    breaker, clock, seen = make()
    for _ in range(4):
        breaker.record(False, 0.001)
    clock.now += 4.9
    assert not breaker.allow()
    assert 0 < breaker.retry_after_s() <= 0.1 + 1e-9
    clock.now += 0.2
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()  # two probes at most at once
    breaker.record(True, 0.001)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record(True, 0.001)
    assert breaker.state is CircuitState.CLOSED
    assert seen == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]
    breaker.record(False, 0.001)  # a fresh window: one failure opens nothing
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_probe_reopens() -> None:
    breaker, clock, _ = make()
    for _ in range(4):
        breaker.record(False, 0.001)
    clock.now += 5
    assert breaker.allow()
    breaker.record(False, 0.001)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after_s() == 5


def test_cancelled_probe_frees_its_slot() -> None:
    breaker, clock, _ = make(half_open_probes=1)
    for _ in range(4):
        breaker.record(False, 0.001)
    clock.now += 5
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_slow_answers_open_it() -> None:
    breaker, _, _ = make(slow_ms=100, slow_rate=0.75)
    for latency in (0.2, 0.2, 0.01, 0.2):
        breaker.record(True, latency)
    assert breaker.state is CircuitState.OPEN
