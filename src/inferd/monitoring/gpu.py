"""GPU utilisation and memory per device through NVML, when there is a GPU.

NVML comes from the ``nvidia-ml-py`` package (``pip install inferd[gpu]``), imported as
``pynvml`` on the first sample. Without the package, without NVIDIA's driver library or
without a device, GPU sampling switches itself off once (logged at INFO) and no ``inferd_gpu_``
family is registered, so ``/metrics`` shows none rather than zeros that look like an idle GPU.
Every worker samples the same devices; the gauges keep the most recent live worker's value.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

logger = logging.getLogger(__name__)

NvmlLoader = Callable[[], Any]


def import_nvml() -> Any:
    """The ``pynvml`` module (raises ImportError without nvidia-ml-py)."""
    return importlib.import_module("pynvml")


class GpuMetrics:
    """Per-device GPU gauges, sampled on demand.

    Args:
        registry: where the families go once NVML found a device.
        load_nvml: returns the NVML module (tests pass a fake); :func:`import_nvml` by default.
    """

    def __init__(self, registry: CollectorRegistry, load_nvml: NvmlLoader = import_nvml) -> None:
        self._registry = registry
        self._load_nvml = load_nvml
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._handles: list[tuple[str, Any]] = []
        self.disabled_reason: str | None = None  # set once NVML turned out unusable
        self.utilization: Gauge | None = None
        self.memory_used: Gauge | None = None
        self.memory_total: Gauge | None = None

    @property
    def enabled(self) -> bool:
        """True once NVML answered with at least one device."""
        return bool(self._handles)

    def sample(self) -> None:
        """Read every device's utilisation and memory; a no-op without a usable GPU."""
        with self._lock:
            if self.disabled_reason is not None:
                return
            if self._nvml is None and not self._start():
                return
            for index, handle in self._handles:
                self._sample_device(index, handle)

    def _start(self) -> bool:
        try:
            nvml = self._load_nvml()
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            handles = [(str(i), nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        except Exception as err:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded...
            return self._disable(f"{type(err).__name__}: {err}")
        if not handles:
            return self._disable("NVML sees no device")
        self._nvml, self._handles = nvml, handles
        r = self._registry
        self.utilization = Gauge(
            "inferd_gpu_utilization_ratio",
            "Share of the last NVML sample period (1/6 s to 1 s) in which a kernel ran, 0 to 1.",
            ["device"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.memory_used = Gauge(
            "inferd_gpu_memory_used_bytes", "Device memory in use, by every process.",
            ["device"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.memory_total = Gauge(
            "inferd_gpu_memory_total_bytes", "Device memory in all.",
            ["device"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        logger.info("GPU metrics: NVML sees %d device(s)", len(handles))
        return True

    def _disable(self, reason: str) -> bool:
        self.disabled_reason = reason
        logger.info("GPU metrics off: %s", reason)
        return False

    def _sample_device(self, index: str, handle: Any) -> None:
        nvml = self._nvml
        try:
            busy = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception as err:  # a device fell off the bus: keep the others going
            logger.warning("GPU metrics: device %s: %s: %s", index, type(err).__name__, err)
            return
        for gauge, value in (
            (self.utilization, float(busy) / 100.0),
            (self.memory_used, float(memory.used)),
            (self.memory_total, float(memory.total)),
        ):
            if gauge is not None:  # always, once _start succeeded
                gauge.labels(index).set(value)

    def close(self) -> None:
        """Release NVML (the process keeps running without GPU samples)."""
        with self._lock:
            if self._nvml is not None:
                try:
                    self._nvml.nvmlShutdown()
                except Exception:  # shutting down: nothing to do about it
                    logger.debug("nvmlShutdown failed", exc_info=True)
                self._nvml, self._handles = None, []
                self.disabled_reason = "closed"
