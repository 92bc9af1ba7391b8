"""Process CPU and memory metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from inferd.monitoring.resources import ResourceMetrics, cpu_seconds, resident_bytes


def _values(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.name: s.value for f in registry.collect() for s in f.samples
        if not s.name.endswith("_created")
    }  # fmt: skip


def test_cpu_is_counted_by_the_time_added_since_the_last_sample() -> None:
    cpu = iter([1.5, 1.75, 1.75, 1.0, 3.0])  # 1.0: a clock that went back is ignored
    memory = iter([100, 200, 150, 150, 175])
    registry = CollectorRegistry()
    resources = ResourceMetrics(registry, cpu=lambda: next(cpu), memory=lambda: next(memory))
    seen = []
    for _ in range(5):
        resources.sample()
        values = _values(registry)
        seen.append((values["inferd_process_cpu_seconds_total"],
                     values["inferd_process_resident_memory_bytes"]))  # fmt: skip
    assert seen == [(1.5, 100), (1.75, 200), (1.75, 150), (1.75, 150), (3.0, 175)]


def test_this_process_readings_are_plausible() -> None:
    assert cpu_seconds() > 0
    busy_until = cpu_seconds() + 0.02
    while cpu_seconds() < busy_until:  # spin: CPU time must grow
        pass
    assert 1 << 20 < resident_bytes() < 1 << 40  # between 1 MiB and 1 TiB
