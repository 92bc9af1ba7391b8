"""Fault: a worker process of ``inferd serve --workers 2`` is killed (SIGKILL) under load.

Only the requests in flight on that worker may fail, and only with no answer (each client
thread has at most one request in flight, so at most one failure per raw client thread); the
supervisor starts a new worker; every other request succeeds; and SDK clients, which retry
a call that got no answer, lose nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from fixtures.load import Call, Load, http_infer
from fixtures.servers import Server

from inferd.client import Client, Retry

RAW_THREADS = 4
SDK_THREADS = 4


@contextmanager
def _sdk_call(url: str) -> Iterator[Call]:
    """A call through the SDK with its retry policy (a call that got no answer is retried)."""
    retry = Retry(attempts=5, backoff_s=0.05, max_backoff_s=0.5)
    with Client(url, retry=retry) as client:

        def call(number: int) -> int:
            client.infer("linear", {"x": np.array([float(number)], dtype=np.float32)})
            return 200

        yield call


def test_a_killed_worker_fails_only_its_requests_in_flight(repo: Path, tmp_path: Path) -> None:
    with Server(repo, tmp_path, workers=2, extra=["--log-level", "info"]) as server:
        before = server.worker_pids()
        assert len(before) == 2, before
        raw = Load(
            lambda: http_infer(server.url, "linear", lambda n: [float(n)]),
            RAW_THREADS,
            pause_s=0.005,
        )
        sdk = Load(lambda: _sdk_call(server.url), SDK_THREADS, pause_s=0.005)
        raw.start()
        sdk.start()
        raw.wait_for(lambda t: t.ok >= 50)
        assert _starts(server) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        # Served on: the surviving worker at once, then the replacement once it is ready.
        # The replacement loads its models first: slow on a busy 2-core machine.
        raw.wait_for(lambda t: len(server.worker_pids() - before) == 1 and t.ok >= 200, 90)
        served = raw.tally.ok
        raw.wait_for(lambda t: t.ok >= served + 100)
        tally, sdk_tally = raw.stop(), sdk.stop()
        after = server.worker_pids()
        starts = _starts_reach(server, 3, 90)
        log = server.output()
    assert tally.failed == {}, tally.summary()
    assert tally.transport <= RAW_THREADS, tally.summary()
    assert tally.ok == tally.sent - tally.transport, tally.summary()
    assert sdk_tally.sent > 0, sdk_tally.summary()
    assert sdk_tally.ok == sdk_tally.sent, sdk_tally.summary()
    assert victim not in after, (before, after)
    assert len(after) == 2, (before, after)
    assert f"Child process [{victim}] died" in log, log
    assert starts == 3  # the two workers, and the one started again


def _starts_reach(server: Server, count: int, timeout_s: float) -> float:
    """``inferd_process_starts_total`` once it reaches ``count`` (the replacement counts
    itself when its start-up begins, after its imports), or as it is at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (starts := _starts(server)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return starts


def _starts(server: Server) -> float:
    """``inferd_process_starts_total`` as any worker answers it."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    (line,) = [x for x in text.splitlines() if x.startswith("inferd_process_starts_total ")]
    return float(line.split()[1])
