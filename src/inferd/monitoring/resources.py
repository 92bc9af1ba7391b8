"""Process CPU and memory as ``inferd_`` metrics that add up across ``--workers N``.

prometheus_client's own process collector reports only the process that answers the scrape
and is not merged across workers, so each worker writes its own values here instead: CPU as
a counter it adds its CPU time to (the shared files keep a finished worker's share, so the
total never goes down), resident memory as a gauge summed over live workers. Each worker
samples itself every few seconds (:class:`inferd.monitoring.sampler.Sampler`) and the one
answering a scrape samples itself first.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_seconds() -> float:
    """User plus system CPU time of this process (its threads included, children not)."""
    times = os.times()
    return times.user + times.system


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024  # bytes vs KiB


class ResourceMetrics:
    """CPU and memory of the serving processes.

    Args:
        registry: where to register the families.
        cpu: CPU seconds so far (injectable for tests).
        memory: resident bytes now (injectable for tests).
    """

    def __init__(
        self, registry: CollectorRegistry, cpu: Callable[[], float] = cpu_seconds,
        memory: Callable[[], int] = resident_bytes,
    ) -> None:  # fmt: skip
        self.cpu_total = Counter(
            "inferd_process_cpu_seconds",
            "CPU time (user + system) used by the serving processes, every worker's added up.",
            registry=registry,
        )  # fmt: skip
        self.memory = Gauge(
            "inferd_process_resident_memory_bytes",
            "Resident memory of the serving processes, summed over the live workers.",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.starts = Counter(
            "inferd_process_starts",
            "Serving processes started: the workers at start-up, plus one for each worker the "
            "supervisor started again after it died.",
            registry=registry,
        )  # fmt: skip
        self._cpu = cpu
        self._memory = memory
        self._lock = threading.Lock()  # the sampler task and a scrape may sample at once
        self._cpu_seen = 0.0

    def started(self) -> None:
        """Count this serving process's start (once, when it starts serving)."""
        self.starts.inc()

    def sample(self) -> None:
        """Add the CPU time used since the last sample and set the current memory."""
        with self._lock:
            now = self._cpu()
            if now > self._cpu_seen:
                self.cpu_total.inc(now - self._cpu_seen)
                self._cpu_seen = now
            self.memory.set(self._memory())
