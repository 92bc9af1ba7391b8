"""The desired-replicas hint: request rate over a window divided by the configured capacity,
with an injected clock; parsing INFERD_CAPACITY_RPS."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from inferd.errors import ConfigError
from inferd.monitoring.capacity import CapacityMetrics, parse_capacity


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def value(registry: CollectorRegistry, name: str, model: str) -> float | None:
    return registry.get_sample_value(name, {"model": model})


def test_hint_is_the_windowed_rate_over_the_capacity() -> None:
    registry, clock = CollectorRegistry(), Clock()
    counts = {"mlp": 0}
    metrics = CapacityMetrics(registry, {"mlp": 100.0}, lambda: dict(counts), clock, window_s=30)
    assert value(registry, "inferd_capacity_rps", "mlp") == 100
    assert value(registry, "inferd_desired_replicas_hint", "mlp") == 0
    metrics.sample()  # the first reading: no rate yet
    assert value(registry, "inferd_desired_replicas_hint", "mlp") == 0
    clock.now, counts["mlp"] = 10, 1500  # 150/s: one and a half replicas
    metrics.sample()
    assert value(registry, "inferd_desired_replicas_hint", "mlp") == pytest.approx(1.5)
    clock.now, counts["mlp"] = 40, 2100  # baseline moves to t=10: 600 in 30 s = 20/s
    metrics.sample()
    assert value(registry, "inferd_desired_replicas_hint", "mlp") == pytest.approx(0.2)


def test_a_count_that_went_down_gives_no_rate_and_unknown_models_count_zero() -> None:
    registry, clock = CollectorRegistry(), Clock()
    counts = {"mlp": 500}
    metrics = CapacityMetrics(registry, {"mlp": 10.0, "idle": 5.0}, lambda: dict(counts), clock)
    metrics.sample()
    clock.now, counts["mlp"] = 10, 20  # the versions were reloaded
    metrics.sample()
    assert value(registry, "inferd_desired_replicas_hint", "mlp") == 0
    assert value(registry, "inferd_desired_replicas_hint", "idle") == 0


def test_a_failing_reading_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("dictionary changed size during iteration")

    CapacityMetrics(CollectorRegistry(), {"m": 1.0}, broken).sample()
    assert "this sample failed" in caplog.text


def test_parse() -> None:
    assert parse_capacity("mlp=850, linear=4000.5") == {"mlp": 850, "linear": 4000.5}
    for bad in ("mlp", "mlp=0", "mlp=fast", "=3"):
        with pytest.raises(ConfigError, match=f"capacity_rps.*got {bad!r}"):
            parse_capacity(bad)
