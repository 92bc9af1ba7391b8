"""Memory measurement, and the promise that loading and unloading does not leak.

The leak check follows the issue: 50 load/unload cycles of a model leave the process's RSS
within 5% of where it started (after a few warm-up cycles, so one-off framework caches and
lazily imported code are already in the baseline).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.models import load_runtime

from inferd.runtimes._memory import LoadMeter, release_host_memory, rss_bytes

CYCLES = 50
WARMUP_CYCLES = 5
LINEAR_IO: dict[str, Any] = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
}


def settled_rss() -> int:
    release_host_memory(collect=True)
    rss = rss_bytes()
    assert rss is not None, "/proc/self/statm is needed for this test"
    return rss


def test_load_meter_sees_an_allocation() -> None:
    with LoadMeter() as meter:
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
    usage = meter.usage(fallback=1)
    assert usage.host_bytes >= 48 * 1024 * 1024
    assert usage.device_bytes == 0
    del block


def test_load_meter_counts_device_growth() -> None:
    readings = iter([10, 4096 + 10])  # bytes allocated on the device before and after
    with LoadMeter(device_bytes=lambda: next(readings)) as meter:
        pass
    usage = meter.usage(fallback=1234)
    assert usage.device_bytes == 4096
    assert usage.host_bytes > 0  # measured growth, or the fallback when there was none
    assert usage.total == usage.host_bytes + 4096


@pytest.mark.parametrize(
    ("platform", "kind", "fields"),
    [
        ("torchscript", "linear", LINEAR_IO),
        ("torch_export", "mlp", {}),
        ("sklearn", "classifier", {}),
        ("xgboost", "classifier", {}),
        ("lightgbm", "classifier", {}),
        ("tensorflow", "mlp", {}),
        ("python", "linear", LINEAR_IO),
    ],
)
def test_fifty_load_unload_cycles_do_not_leak(
    platform: str,
    kind: str,
    fields: dict[str, Any],
    linear_model: Callable[[str], Path],
    mlp_model: Callable[[str], Path],
    classifier: Callable[[str], tuple[Path, Any]],
) -> None:
    if kind == "linear":
        artifact = linear_model(platform)
    elif kind == "mlp":
        artifact = mlp_model(platform)
    else:
        artifact = classifier(platform)[0]

    def cycle() -> None:
        runtime = load_runtime(platform, artifact, **fields)
        runtime.warmup([1, 8])
        runtime.unload()

    for _ in range(WARMUP_CYCLES):
        cycle()
    start = settled_rss()
    for _ in range(CYCLES):
        cycle()
    end = settled_rss()
    growth = (end - start) / start
    assert growth < 0.05, f"{platform}: RSS grew {growth:.1%} ({start} -> {end} bytes)"
    gc.collect()
