"""SIGTERM turns readiness false before the listeners close (drain_delay_s)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from types import FrameType

import httpx
import pytest
from fixtures.servers import Server

from inferd.transport.http.drain import DrainOnTerm

X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


def test_drain_delays_the_handler_it_replaced() -> None:
    seen: list[str] = []

    async def scenario() -> None:
        exited = asyncio.Event()

        def uvicorn_like(sig: int, frame: FrameType | None) -> None:
            seen.append("exit")
            exited.set()

        previous = signal.signal(signal.SIGTERM, uvicorn_like)
        try:
            drain = DrainOnTerm(1.0, lambda: seen.append("drain"))
            assert drain.install()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            assert seen == ["drain"]  # not ready at once; the listeners still open
            await asyncio.wait_for(exited.wait(), timeout=10)
            assert seen == ["drain", "exit"]
            os.kill(os.getpid(), signal.SIGTERM)  # a second one goes straight through
            assert seen == ["drain", "exit", "exit"]
        finally:
            signal.signal(signal.SIGTERM, previous)

    asyncio.run(scenario())


def test_drain_without_a_handler_changes_nothing() -> None:
    async def scenario() -> bool:
        return DrainOnTerm(1.0, lambda: None).install()

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert asyncio.run(scenario()) is False
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_drain_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="expected >= 0, got -1"):
        DrainOnTerm(-1, lambda: None)


@pytest.mark.slow
def test_sigterm_reports_not_ready_while_still_serving(repo: Path, tmp_path: Path) -> None:
    with Server(repo, tmp_path, extra=["--drain-delay-s", "3"]) as server:
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200:
            assert time.monotonic() < deadline, "still ready 2 s after SIGTERM"
            time.sleep(0.02)
        # Not ready, yet new connections are accepted and requests answered.
        r = httpx.post(f"{server.url}/v2/models/linear/infer", json=X, timeout=10)
        assert r.status_code == 200, r.text
        assert httpx.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
        assert server.proc.wait(timeout=30) is not None
