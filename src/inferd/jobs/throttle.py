"""Online traffic first: job workers slow down while their server answers requests.

Low priority (``nice``, ``SCHED_IDLE``) hands the CPU to the server whenever it wants it,
but a job running flat out on the other cores still costs online latency through shared
caches, memory bandwidth and sibling hyperthreads. So while the server is busy, each worker
also caps its own duty cycle: after a batch that took ``t`` seconds it sleeps
``t * (1 / share - 1)``, using at most ``share`` of one CPU. With no online traffic it runs
at full speed.

    ActivityProbe   server side: "did requests get answered in the last moment?"
    BusySignal      carries that to worker processes (a multiprocessing Event)
    Throttle        worker side: sleep after each batch while the signal is set
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class ActivityProbe:
    """True while a growing counter (answered requests) moved within ``hold_s``.

    Args:
        counter: returns a number that grows with every answered online request.
        hold_s: how long after the last change the server still counts as busy.
    """

    def __init__(self, counter: Callable[[], int], hold_s: float = 0.2) -> None:
        self.counter = counter
        self.hold_s = hold_s
        self._last = counter()
        self._changed_at = 0.0

    def __call__(self) -> bool:
        now, value = time.monotonic(), self.counter()
        if value != self._last:
            self._last, self._changed_at = value, now
        return now - self._changed_at < self.hold_s


class BusySignal:
    """Mirrors a probe into ``event`` every ``interval_s`` until stopped (a thread)."""

    def __init__(self, probe: Callable[[], bool], event: Any, interval_s: float = 0.02) -> None:
        self.probe, self.event, self.interval_s = probe, event, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-busy-signal", daemon=True)

    def start(self) -> BusySignal:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.event.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.probe():
                self.event.set()
            else:
                self.event.clear()


class Throttle:
    """Called by a worker after each batch with the seconds it took.

    Args:
        busy: an Event-like object set while the server is busy.
        share: share of one CPU a worker may use while busy (0 < share <= 1).
    """

    def __init__(self, busy: Any, share: float) -> None:
        self.busy = busy
        self.share = share

    def __call__(self, seconds: float) -> None:
        if self.share < 1.0 and self.busy.is_set():
            time.sleep(min(seconds * (1.0 / self.share - 1.0), 1.0))
