"""The garbage collector of a serving process: start-up objects frozen, a larger young generation.

Measured on ``inferd serve`` with ``linear`` at 64 connections (``bench/gc_tuning.py``),
CPython's defaults cost about 15% of the server's CPU and set its p99 latency: every ~36
requests a young collection promotes the objects of the requests in flight, which makes a full
collection due every ~10,000 requests, and a full collection walks the ~170,000 objects that
imports, runtimes and models left behind (over 100 ms with the event loop stopped).

    Collector.configure()  at start: young-generation threshold ``young_threshold`` (700 by
                           default in CPython): objects of finished requests die young, by
                           reference count, and far fewer in-flight ones are promoted
    Collector.settle()     once the start-up load is done: collect, then ``gc.freeze()`` the
                           survivors, which full collections skip from then on
    Collector.released()   after a version's runtime is unloaded: its objects were frozen,
                           and a reference cycle among them would never be freed; unfreeze,
                           collect, freeze again (one full collection, at unload time)

Frozen objects are still freed by reference counting; only cycles among them wait for
:meth:`Collector.released`. ``INFERD_GC_TUNING=false`` keeps CPython's defaults.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD = 50_000


class Collector:
    """Garbage-collector settings of one serving process.

    Args:
        enabled: tune the collector; False leaves CPython's defaults and every call a no-op.
        young_threshold: allocations (less deallocations) of tracked objects between two
            young collections.
    """

    def __init__(self, enabled: bool = True, young_threshold: int = YOUNG_THRESHOLD) -> None:
        if young_threshold < 1:
            raise ValueError(f"young_threshold: expected at least 1, got {young_threshold}")
        self.enabled = enabled
        self.young_threshold = young_threshold
        self.frozen = 0  # objects frozen by the last settle()

    def configure(self) -> None:
        """Set the young generation's threshold (the older two keep CPython's)."""
        if not self.enabled:
            return
        _, middle, old = gc.get_threshold()
        gc.set_threshold(self.young_threshold, middle, old)

    def settle(self) -> float:
        """Collect, then freeze what survives; returns the seconds it took."""
        if not self.enabled:
            return 0.0
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        elapsed = time.perf_counter() - started
        logger.info("garbage collector: %d objects frozen in %.0f ms", self.frozen, elapsed * 1e3)
        return elapsed

    def released(self) -> float:
        """A runtime was unloaded: give its frozen objects back to the collector, collect,
        and freeze the rest again; returns the seconds it took."""
        if not self.enabled:
            return 0.0
        gc.unfreeze()
        return self.settle()
