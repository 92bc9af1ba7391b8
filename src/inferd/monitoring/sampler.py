"""The background task that samples what no request updates: process CPU and memory, GPUs,
and the snapshots behind ``/v1/models/{m}/metrics``.

One runs in every worker: CPU and memory are per process, and every worker must be able to
answer the per-model summary from its own ring of snapshots (see inferd.monitoring.window).
"""

from __future__ import annotations

import asyncio
import logging

from inferd.monitoring.metrics import Metrics

logger = logging.getLogger(__name__)


class Sampler:
    """Calls :meth:`tick` every ``interval_s`` seconds until cancelled.

    Args:
        metrics: the process's metrics.
        interval_s: seconds between samples; the summary's windows are multiples of it.
    """

    def __init__(self, metrics: Metrics, interval_s: float | None = None) -> None:
        self.metrics = metrics
        self.interval_s = interval_s if interval_s is not None else metrics.window.interval_s

    def tick(self) -> None:
        """Sample once (blocking: reads /proc, NVML and, with several workers, their files).

        A failure is logged and the next tick tries again: monitoring never stops serving.
        """
        try:
            self.metrics.sample()
            self.metrics.window.snapshot()
        except Exception:
            logger.exception("metrics sampler: this tick failed; the next one retries")

    async def run(self) -> None:
        """Tick now and then every interval, off the event loop."""
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(self.interval_s)

    def close(self) -> None:
        """Release NVML."""
        self.metrics.gpu.close()
