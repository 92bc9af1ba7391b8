"""Logging a registry outage from a polling loop: once when it starts, once when it ends.

Every background loop of a server (routing refresh, flushes, alert evaluation, key refresh,
the rollout controller) polls the registry each few seconds. During an outage each poll fails
the same way; a warning per poll and per loop buries everything else in the log. Each loop
keeps an :class:`OutageLog` and reports every poll's outcome to it; :func:`poll` is that
loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from inferd.errors import RegistryUnavailable


class OutageLog:
    """The registry outage as one loop sees it.

    Args:
        logger: where the two lines go.
        what: what the loop could not do, e.g. ``"experiments not refreshed or flushed"``.
        level: the level of the first failure's line (recovery is logged at INFO).
    """

    def __init__(self, logger: logging.Logger, what: str, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.what = what
        self.level = level
        self.down = False
        self.failures = 0  # polls failed in the current outage

    def failed(self, message: str) -> None:
        """A poll failed because the registry is unreachable: the first of an outage is
        logged with ``message``, the others are counted."""
        self.failures += 1
        if not self.down:
            self.down = True
            self.logger.log(self.level, "%s until the registry returns: %s", self.what, message)

    def ok(self) -> None:
        """A poll reached the registry: the end of an outage is logged."""
        if self.down:
            self.logger.info("registry reachable again after %d failed polls (%s)",
                             self.failures, self.what)  # fmt: skip
        self.down = False
        self.failures = 0


async def poll(
    tick: Callable[[], Awaitable[object]], every_s: float, outage: OutageLog, failure: str,
    *, wait_first: bool = False,
) -> NoReturn:  # fmt: skip
    """Await ``tick()`` now (after one ``every_s`` with ``wait_first``) and every ``every_s``
    until cancelled. A registry outage goes to ``outage``; any other error is logged with
    ``failure`` and its traceback; either way the loop goes on."""
    if wait_first:
        await asyncio.sleep(every_s)
    while True:
        try:
            await tick()
            outage.ok()
        except RegistryUnavailable as err:
            outage.failed(err.message)
        except Exception:
            outage.logger.exception(failure)
        await asyncio.sleep(every_s)
