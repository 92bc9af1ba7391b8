"""GPU metrics through NVML: off cleanly without a GPU, per device with one (a fake NVML)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from fixtures.nvml import FakeNvml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from inferd.monitoring.gpu import GpuMetrics
from inferd.monitoring.metrics import Metrics

GiB = 1 << 30


def _gpu_lines(metrics: Metrics) -> list[str]:
    text = metrics.render().decode()
    return [line for line in text.splitlines() if line.startswith("inferd_gpu_")]


def _gpu_values(metrics: Metrics) -> dict[tuple[str, str], float]:
    text = metrics.render().decode()
    return {
        (s.name, s.labels["device"]): s.value for f in text_string_to_metric_families(text)
        for s in f.samples if s.name.startswith("inferd_gpu_")
    }  # fmt: skip


def test_without_nvml_there_is_no_gpu_family_and_no_retry() -> None:
    calls = []

    def missing() -> Any:
        calls.append(1)
        raise ImportError("No module named 'pynvml'")

    metrics = Metrics(CollectorRegistry(), load_nvml=missing)
    assert _gpu_lines(metrics) == []
    assert "inferd_gpu_" not in metrics.render().decode()  # not even HELP lines
    assert metrics.gpu.disabled_reason is not None
    assert "pynvml" in metrics.gpu.disabled_reason
    assert calls == [1]  # the second render did not try again


def test_real_pynvml_without_a_driver_is_skipped() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - only on a machine with a GPU
        pynvml.nvmlShutdown()
        pytest.skip("this machine has NVML: the no-GPU path cannot be seen here")
    metrics = Metrics(CollectorRegistry())
    assert _gpu_lines(metrics) == []
    assert metrics.gpu.disabled_reason is not None
    assert "NVMLError" in metrics.gpu.disabled_reason


def test_no_device_disables_gpu_metrics() -> None:
    metrics = Metrics(CollectorRegistry(), load_nvml=lambda: FakeNvml([]))
    assert _gpu_lines(metrics) == []
    assert metrics.gpu.disabled_reason == "NVML sees no device"


def test_every_device_is_sampled_and_a_lost_one_does_not_stop_the_others() -> None:
    nvml = FakeNvml([
        {"busy": 37, "used": 3 * GiB, "total": 80 * GiB},
        {"busy": 0, "used": 0, "total": 80 * GiB, "lost": True},
        {"busy": 100, "used": 79 * GiB, "total": 80 * GiB},
    ])  # fmt: skip
    metrics = Metrics(CollectorRegistry(), load_nvml=lambda: nvml)
    assert _gpu_values(metrics) == {
        ("inferd_gpu_utilization_ratio", "0"): 0.37,
        ("inferd_gpu_memory_used_bytes", "0"): 3 * GiB,
        ("inferd_gpu_memory_total_bytes", "0"): 80 * GiB,
        ("inferd_gpu_utilization_ratio", "2"): 1.0,
        ("inferd_gpu_memory_used_bytes", "2"): 79 * GiB,
        ("inferd_gpu_memory_total_bytes", "2"): 80 * GiB,
    }  # device 1 is lost: no series rather than a stale or zero one
    nvml.devices[0]["busy"] = 5  # the next sample sees the change
    assert _gpu_values(metrics)[("inferd_gpu_utilization_ratio", "0")] == 0.05
    metrics.gpu.close()
    assert nvml.shutdowns == 1


def test_the_default_loader_imports_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml([{"busy": 50, "used": GiB, "total": 2 * GiB}])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpu = GpuMetrics(CollectorRegistry())
    gpu.sample()
    assert gpu.enabled
    assert gpu.utilization is not None
    assert gpu.utilization.labels("0")._value.get() == 0.5
