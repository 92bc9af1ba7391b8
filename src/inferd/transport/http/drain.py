"""Readiness goes false on SIGTERM before the listeners close.

uvicorn answers SIGTERM by closing its listening socket at once. A load balancer (HAProxy,
nginx, a Kubernetes Service) only learns that a replica is leaving from its next health check,
so for that long it keeps sending new requests to a closed port or to a keep-alive connection
the server is closing: some of those fail. With a drain delay, the first SIGTERM only turns
``GET /v2/health/ready`` (and gRPC ``ServerReady``) to not ready; after ``delay_s`` the signal
goes on to uvicorn, which stops accepting and lets in-flight requests finish as before
(``graceful_timeout_s``). The delay should cover the balancer's check interval times its fall
count; on Kubernetes a ``preStop`` sleep does the same job.

A second SIGTERM or a SIGINT during the delay is passed on at once: an operator who insists is
not kept waiting.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any]


class DrainOnTerm:
    """Wraps the SIGTERM handler uvicorn installed, delaying it by ``delay_s``.

    Args:
        delay_s: seconds between the first SIGTERM and uvicorn's own shutdown (0: none).
        on_drain: called once on the first SIGTERM, e.g. to report not ready.
    """

    def __init__(self, delay_s: float, on_drain: Callable[[], None]) -> None:
        if delay_s < 0:
            raise ValueError(f"drain delay_s: expected >= 0, got {delay_s}")
        self.delay_s = delay_s
        self._on_drain = on_drain
        self._previous: Handler | None = None
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> bool:
        """Take over SIGTERM from the handler in place (uvicorn's); call on the event loop.

        Returns False, changing nothing, where no Python handler is there to delay (not the
        main thread, or no server installed one).
        """
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return False
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: uvicorn handles no signals there either
            return False
        self._previous = previous
        self._loop = asyncio.get_running_loop()
        return True

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self.delay_s == 0:
            self._pass_on(sig, frame)
            if not self._draining:
                self._draining = True
                self._on_drain()
            return
        self._draining = True
        self._on_drain()
        logger.info("SIGTERM: not ready now; closing the listeners in %.1f s", self.delay_s)
        if self._loop is not None:  # set with _previous in install()
            # Signal handlers run between bytecodes of the main thread, which runs the loop:
            # the thread-safe call wakes the loop to schedule the timer.
            self._loop.call_soon_threadsafe(self._schedule, sig)

    def _schedule(self, sig: int) -> None:
        if self._loop is not None:
            self._loop.call_later(self.delay_s, self._pass_on, sig, None)

    def _pass_on(self, sig: int, frame: FrameType | None = None) -> None:
        if self._previous is not None:
            self._previous(sig, frame)
