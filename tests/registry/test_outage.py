"""A registry outage is logged once when it starts and once when it ends, per loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from inferd.errors import RegistryUnavailable
from inferd.registry.outage import OutageLog, poll


def test_an_outage_is_two_lines_whatever_its_length(caplog: pytest.LogCaptureFixture) -> None:
    log = OutageLog(logging.getLogger("t.loop"), "experiments not flushed")
    caplog.set_level(logging.INFO, logger="t.loop")
    log.ok()  # a healthy poll says nothing
    for _ in range(5):
        log.failed("registry database unavailable (connection refused)")
    log.ok()
    log.ok()
    log.failed("registry database unavailable (timeout)")  # a second outage is logged again
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "experiments not flushed until the registry returns: registry "
                          "database unavailable (connection refused)"),
        (logging.INFO, "registry reachable again after 5 failed polls (experiments not flushed)"),
        (logging.WARNING, "experiments not flushed until the registry returns: registry "
                          "database unavailable (timeout)"),
    ]  # fmt: skip
    assert (log.down, log.failures) == (True, 1)


def test_the_first_line_takes_the_loops_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t.control")
    OutageLog(logging.getLogger("t.control"), "models not reconciled", logging.ERROR).failed("x")
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


async def test_poll_ticks_on_through_outages_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t.poll")
    outcomes: list[BaseException | None] = [
        RegistryUnavailable("refused"),
        RegistryUnavailable("refused"),
        ValueError("a bug"),
        None,
    ]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        outcome = outcomes[ticks - 1] if ticks <= len(outcomes) else None
        if outcome is not None:
            raise outcome
        if ticks == len(outcomes):
            raise asyncio.CancelledError  # stands for the server cancelling the loop

    outage = OutageLog(logging.getLogger("t.poll"), "things not done")
    with pytest.raises(asyncio.CancelledError):
        await poll(tick, 0, outage, "thing failed", wait_first=True)
    assert ticks == 4
    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        (f"things not done until the registry returns: {RegistryUnavailable('refused').message}",
         False),
        ("thing failed", True),  # another error keeps its traceback, and the outage goes on
    ]  # fmt: skip
    assert (outage.down, outage.failures) == (True, 2)
