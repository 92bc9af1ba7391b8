"""`inferd jobs publish / published / unpublish` on the registry directly."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from jobdata import features, make_registry, write_parquet

from inferd.cli.main import main
from inferd.jobs import JobService


def test_publish_show_and_unpublish(
    tabular_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("INFERD_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = make_registry(url, tabular_repo)
    service = JobService(registry, str(tmp_path / "a"), str(tmp_path / "c"), in_server=False)
    path = write_parquet(tmp_path / "in.parquet", features(50))
    job = service.submit({"model": "tabular", "inputs": [str(path)],
                          "output": str(tmp_path / "out"), "passthrough": ["id"]})  # fmt: skip
    service.run_here(job.id, threading.Event())
    registry.close()
    flags = ["--registry-url", url]
    assert main(["jobs", "publish", job.id, "--key", "id", "--max-age", "12h", *flags]) == 0
    line = capsys.readouterr().out
    assert "model tabular version 1, active, 50 rows keyed by 'id' in db" in line
    assert "served up to 43200 s old" in line
    assert main(["jobs", "published", job.id, "--json", *flags]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["rows"], shown["job_id"]) == ("active", 50, job.id)
    assert main(["jobs", "publish", job.id, "--key", "user_id", *flags]) == 2
    assert "run the job with --passthrough user_id" in capsys.readouterr().err
    assert main(["jobs", "unpublish", job.id, *flags]) == 0
    assert ", deleted," in capsys.readouterr().out
    assert main(["jobs", "published", job.id, *flags]) == 2  # not found
    assert "no precomputed table published from job" in capsys.readouterr().err
