"""`inferd jobs ...` on this machine (registry directly) and through a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.servers import Server
from jobdata import assert_predictions, features, make_registry, read_output, write_parquet

from inferd.cli.main import main
from inferd.jobs import JobService, JobState, JobStore
from inferd.jobs.progress import progress_line


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["jobs", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INFERD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_run_in_the_foreground_then_list_and_show(
    tabular_repo: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = features(1200, seed=8)
    path = write_parquet(tmp_path / "in.parquet", x)
    out = tmp_path / "out"
    flags = ["--model-repository", str(tabular_repo)]
    args = ["run", "--model", "tabular", "--input", str(path), "--output", str(out),
            "--passthrough", "id", "--columns", "x=f*", "--chunk-rows", "500", *flags]  # fmt: skip
    assert main(["jobs", *args]) == 0
    captured = capsys.readouterr()
    assert "100.0%  1,200/1,200 rows" in captured.err  # the progress bar
    assert "state     succeeded" in captured.out
    assert_predictions(read_output(out), x, np.arange(1200))
    (listed,) = cli_json(capsys, "list", *flags)
    assert (listed["state"], listed["rows_done"], listed["spec"]["columns"]) == (
        "succeeded", 1200, {"x": ["f*"]})  # fmt: skip
    assert main(["jobs", "show", listed["id"], *flags]) == 0
    assert "tabular version 1" in capsys.readouterr().out
    assert main(["jobs", "run", *args[1:]]) == 2  # the output folder is not empty now
    assert "not empty" in capsys.readouterr().err


def test_submit_runs_in_the_background_cancel_and_resume(
    tabular_repo: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = make_registry(url, tabular_repo)
    x = features(800, seed=6)
    path = write_parquet(tmp_path / "in.parquet", x)
    submitted = cli_json(capsys, "submit", "--registry-url", url, "--model", "tabular",
                         "--input", str(path), "--output", str(tmp_path / "a"),
                         "--passthrough", "id")  # fmt: skip
    assert submitted["state"] == "queued"
    store = JobStore(registry.engine)
    deadline = time.monotonic() + 60
    while not store.get(submitted["id"]).state.terminal and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get(submitted["id"]).state is JobState.SUCCEEDED
    assert (home / "jobs" / f"{submitted['id']}.log").exists()
    assert_predictions(read_output(tmp_path / "a"), x, np.arange(800))
    service = JobService(registry, str(tmp_path), str(tmp_path / "cache"), in_server=False)
    queued = service.submit({"model": "tabular", "inputs": [str(path)], "passthrough": ["id"],
                             "output": str(tmp_path / "b")})  # fmt: skip
    assert cli_json(capsys, "cancel", queued.id, "--registry-url", url)["state"] == "cancelled"
    resumed = cli_json(capsys, "resume", queued.id, "--registry-url", url)
    assert (resumed["state"], resumed["rows_done"]) == ("succeeded", 800)
    registry.close()


def test_errors_and_progress_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["jobs", "submit", "--model", "m"])  # --input and --output are required
    capsys.readouterr()
    line = progress_line({"rows_total": 1000, "rows_done": 450, "rows_failed": 2,
                          "rows_per_s": 1234.5, "eta_s": 3725})  # fmt: skip
    assert (
        line
        == "[##########..............]  45.2%  452/1,000 rows  1,234 rows/s  ETA 1:02:05  failed 2"
    )


@pytest.fixture
def server(tabular_repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(tabular_repo, tmp_path) as srv:
        yield srv


@pytest.mark.slow
def test_through_a_real_server(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = features(2000, seed=12)
    path = write_parquet(tmp_path / "in.parquet", x)
    url = ["--url", server.url]
    job = cli_json(capsys, "submit", *url, "--model", "tabular", "--input", str(path),
                   "--output", str(tmp_path / "out"), "--passthrough", "id")  # fmt: skip
    deadline = time.monotonic() + 60
    while job["state"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = cli_json(capsys, "show", job["id"], *url)
    assert job["state"] == "succeeded", job["error"] + server.output()
    assert_predictions(read_output(tmp_path / "out"), x, np.arange(2000))
    assert [j["id"] for j in cli_json(capsys, "list", *url)] == [job["id"]]


def test_jobs_cli_takes_an_api_key_and_says_how_to_work_without_a_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["jobs", "list", "--url", "http://127.0.0.1:9", "--api-key", "k"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the server" in err
    assert "--model-repository to work without a server" in err
