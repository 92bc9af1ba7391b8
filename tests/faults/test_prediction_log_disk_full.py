"""Fault: the disk under the prediction log fills up while load runs, then frees again.

The log sits on a 4 MiB tmpfs mounted by the test (as root; where mounting is not allowed,
the test is skipped and says why). While the disk is full,
inference goes on with no failed request; the log drops what it cannot write, counts it in
``inferd_prediction_log_dropped_total{reason="disk_full"}`` and warns once (not per request
or per flush); once space returns it writes again, without a restart.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.load import Load, http_infer
from fixtures.servers import Server

THREADS = 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (room for the files the test writes), unmounted after the test."""
    mount = tmp_path / "plog"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:  # not root, or a container without CAP_SYS_ADMIN
        pytest.skip(f"cannot mount a tmpfs for the full disk here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass  # ENOSPC: full
    return filler


def _counter(client: httpx.Client, name: str, labels: str = "") -> float:
    text = client.get("/metrics").text
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_full_disk_drops_log_entries_counted_and_serving_goes_on(
    repo: Path, tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERD_PREDICTION_LOG_FLUSH_S", "0.1")
    extra = ["--prediction-log-uri", str(small_disk), "--prediction-log-rate", "1.0"]
    home = tmp_path / "home"
    home.mkdir()
    with Server(repo, home, extra=extra) as server, httpx.Client(base_url=server.url) as client:
        load = Load(
            lambda: http_infer(server.url, "linear", lambda n: [float(n)]), THREADS, pause_s=0.005
        )
        written = "inferd_prediction_log_written_total"
        full = ("inferd_prediction_log_dropped_total", '{reason="disk_full"}')
        load.start().wait_for(lambda t: _counter(client, written) >= 50)
        filler = _fill(small_disk)
        load.wait_for(lambda t: _counter(client, *full) >= 200)  # several flushes dropped
        filler.unlink()
        before = _counter(client, written)
        load.wait_for(lambda t: _counter(client, written) >= before + 50)  # written again
        tally = load.stop()
        dropped = _counter(client, *full)
        log = server.output()
    assert tally.ok == tally.sent, tally.summary()
    assert dropped >= 200
    warnings = re.findall(r"prediction log: \d+ sampled requests dropped \(disk_full.*", log)
    assert len(warnings) == 1, log
    assert "No space left on device" in warnings[0], warnings
