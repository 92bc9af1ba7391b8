"""kill -9 in the middle of a job, resume, and get every input row exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from jobdata import assert_predictions, features, make_registry, read_output, write_parquet

from inferd.cli.main import main
from inferd.jobs import JobState, JobStore

ROWS, CHUNK = 60_000, 500


@pytest.mark.slow
def test_kill_9_then_resume_gives_every_row_once(
    tabular_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = make_registry(url, tabular_repo)
    store = JobStore(registry.engine)
    x = features(ROWS, seed=21)
    path = write_parquet(tmp_path / "in.parquet", x, row_group=10_000)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "inferd.cli.main", "jobs", "run", "--registry-url", url,
        "--model", "tabular", "--input", str(path), "--output", str(out), "--passthrough", "id",
        "--chunk-rows", str(CHUNK), "--batch-size", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "INFERD_HOME": str(tmp_path / "home")}
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # batch size 1 keeps each chunk at some ms
            jobs = store.list_jobs()
            if jobs and jobs[0].chunks_done >= 5:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed = store.list_jobs()[0]
    assert killed.state is JobState.RUNNING
    assert 5 <= killed.chunks_done < ROWS // CHUNK

    assert main(["jobs", "resume", killed.id, "--registry-url", url, "--json", "--quiet"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["state"], done["attempts"]) == ("succeeded", 2)
    assert (done["rows_done"], done["rows_failed"], done["chunks_done"]) == (ROWS, 0, ROWS // CHUNK)
    table = read_output(out)
    assert_predictions(table, x, np.arange(ROWS))  # each id once, y equal to direct inference
    assert not list(out.glob(".*.tmp")), "temporary files of the killed run are cleaned up"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == {"total": ROWS, "written": ROWS, "failed": 0}
    assert len(manifest["parts"]) == len(list(out.glob("part-*.parquet"))) == ROWS // CHUNK
    registry.close()
