"""Jobs end to end on the local engine: outputs equal direct inference, row for row."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from jobdata import (
    assert_predictions,
    features,
    make_registry,
    read_errors,
    read_output,
    write_csv,
    write_jsonl,
    write_parquet,
)

from inferd.errors import Conflict, InvalidInput, ModelNotFound
from inferd.jobs import ChunkResult, JobService, JobState
from inferd.jobs.engine import Engine, OnDone, ShouldStop
from inferd.jobs.local import LocalEngine
from inferd.jobs.processor import JobContext
from inferd.jobs.records import Chunk, JobRecord
from inferd.jobs.spec import JobSpec
from inferd.runtimes import Runtime


def run(service: JobService, **spec: Any) -> JobRecord:
    job = service.submit({"model": "tabular", **spec}, "tester")
    return service.run_here(job.id, threading.Event())


def test_parquet_files_by_glob_with_passthrough(service: JobService, tmp_path: Path) -> None:
    x = features(2500)
    write_parquet(tmp_path / "in" / "a.parquet", x[:1500], 0, row_group=1000)
    write_parquet(tmp_path / "in" / "b.parquet", x[1500:], 1500, row_group=300)
    out = tmp_path / "out"
    job = run(service, inputs=[str(tmp_path / "in" / "*.parquet")], output=str(out),
              passthrough=["id"], chunk_rows=700, batch_size=128)  # fmt: skip
    assert (job.state, job.error) == (JobState.SUCCEEDED, "")
    assert (job.rows_total, job.rows_done, job.rows_failed) == (2500, 2500, 0)
    table = read_output(out)
    assert table.column_names == ["id", "y"]
    assert_predictions(table, x, np.arange(2500))
    manifest = json.loads((out / "_manifest.json").read_text())
    assert (manifest["model"], manifest["version"]) == ("tabular", 1)
    assert manifest["rows"] == {"total": 2500, "written": 2500, "failed": 0}
    assert [i["rows"] for i in manifest["inputs"]] == [1500, 1000]
    assert len(manifest["parts"]) == job.chunks_total == 5  # a:700+300+500 b:600+400
    assert sum(p["rows"] for p in manifest["parts"]) == 2500
    assert pq.read_table(out).num_rows == 2500  # readers skip _manifest.json and _errors/
    with pytest.raises(Conflict, match="not empty"):
        service.submit({"model": "tabular", "inputs": [str(tmp_path / "in")], "output": str(out)})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_inputs_and_jsonl_output(service: JobService, tmp_path: Path, fmt: str) -> None:
    x = features(900, seed=3)
    path = (write_csv if fmt == "csv" else write_jsonl)(tmp_path / f"in.{fmt}", x)
    out = tmp_path / "out"
    job = run(service, inputs=[str(path)], output=str(out), passthrough=["id"],
              columns={"x": ["f*"]}, output_format="jsonl", chunk_rows=250)  # fmt: skip
    assert job.state is JobState.SUCCEEDED, job.error
    assert sorted(p.name for p in out.glob("part-*")) == [f"part-00000{i}.jsonl" for i in range(4)]
    assert_predictions(read_output(out), x, np.arange(900))


def test_bad_rows_go_to_the_errors_file(service: JobService, tmp_path: Path) -> None:
    x = features(200, seed=5)
    path = write_csv(tmp_path / "in.csv", x)
    lines = path.read_text().splitlines()
    lines[1 + 10] = lines[1 + 10].replace(",", ",abc,", 1).rsplit(",", 1)[0]  # a0 = "abc"
    lines[1 + 20] = "20,1,2"  # too few columns
    lines[1 + 30] = lines[1 + 30].rsplit(",", 1)[0] + ",nan"  # NaN, the model allows none
    lines[1 + 40] = lines[1 + 40].rsplit(",", 1)[0] + ","  # a missing value
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    job = run(service, inputs=[str(path)], output=str(out), passthrough=["id"],
              chunk_rows=64, max_error_rate=0.05)  # fmt: skip
    assert (job.state, job.rows_done, job.rows_failed) == (JobState.SUCCEEDED, 196, 4)
    errors = read_errors(out)
    assert [e["row"] for e in errors] == [10, 20, 30, 40]
    assert "expected double, got 'abc'" in str(errors[0]["reason"])
    assert "expected 17 columns, got 3" in str(errors[1]["reason"])
    assert "NaN or Inf" in str(errors[2]["reason"])
    assert errors[2]["id"] == 30
    assert "column 'f15': missing" in str(errors[3]["reason"])
    good = np.setdiff1d(np.arange(200), [10, 20, 30, 40])
    assert_predictions(read_output(out), x, good)
    strict = run(service, inputs=[str(path)], output=str(tmp_path / "o2"), passthrough=["id"],
                 max_error_rate=0.01)  # fmt: skip
    assert strict.state is JobState.FAILED
    assert "4 of 200 rows failed validation (2.00%), above max_error_rate 1.00%" in strict.error
    assert not (tmp_path / "o2" / "_manifest.json").exists()


def test_submit_validates_before_queueing(service: JobService, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "in.parquet", features(10))
    base = {"model": "tabular", "inputs": [str(path)], "output": str(tmp_path / "o")}
    with pytest.raises(InvalidInput, match=r"job\.batch_size"):
        service.submit({**base, "batch_size": 0})
    with pytest.raises(InvalidInput, match="nothing at"):
        service.submit({**base, "inputs": [str(tmp_path / "none*.parquet")]})
    with pytest.raises(ModelNotFound):
        service.submit({**base, "model": "ghost"})
    with pytest.raises(ModelNotFound):
        service.submit({**base, "version": 7})
    failed = run(service, **{**base, "model": "tabular", "columns": {"x": ["nope*"]}})
    assert failed.state is JobState.FAILED
    assert "nothing matching 'nope*'" in failed.error
    assert service.list_jobs()[0].id == failed.id


class GatedEngine(Engine):
    """The local engine, pausing after the first chunk until the test lets it go on."""

    def __init__(self, runtime: Runtime | None) -> None:
        self.inner = LocalEngine(1, in_process=True, runtime=runtime)
        self.first_done = threading.Event()
        self.go_on = threading.Event()

    def run(
        self, ctx: JobContext, runs: list[list[Chunk]], on_done: OnDone, stop: ShouldStop
    ) -> None:
        def gated(result: ChunkResult) -> None:
            on_done(result)
            if not self.first_done.is_set():
                self.first_done.set()
                self.go_on.wait(10)

        self.inner.run(ctx, runs, gated, stop)


def test_cancel_then_resume_processes_each_row_once(registry: Any, tmp_path: Path) -> None:
    engines: list[GatedEngine] = []

    def factory(spec: JobSpec, runtime: Runtime | None) -> Engine:
        engines.append(GatedEngine(runtime))
        if len(engines) > 1:  # only the first run pauses
            engines[-1].go_on.set()
        return engines[-1]

    service = JobService(registry, str(tmp_path), str(tmp_path / "cache"), in_server=False,
                         engine_factory=factory)  # fmt: skip
    x = features(3000, seed=7)
    path = write_parquet(tmp_path / "in.parquet", x, row_group=3000)
    out = tmp_path / "out"
    job = service.submit({"model": "tabular", "inputs": [str(path)], "output": str(out),
                          "passthrough": ["id"], "chunk_rows": 100})  # fmt: skip
    result: list[JobRecord] = []
    thread = threading.Thread(
        target=lambda: result.append(service.run_here(job.id, threading.Event()))
    )
    thread.start()
    assert _wait(lambda: bool(engines) and engines[0].first_done.is_set())
    assert service.cancel(job.id).cancel_requested
    engines[0].go_on.set()
    thread.join(30)
    cancelled = result[0]
    assert cancelled.state is JobState.CANCELLED
    assert 0 < cancelled.chunks_done < 30
    with pytest.raises(Conflict):
        service.cancel(job.id)
    resumed = service.resume(job.id)
    assert resumed.state is JobState.QUEUED
    finished = service.run_here(job.id, threading.Event())
    assert (finished.state, finished.chunks_done, finished.rows_done) == (
        JobState.SUCCEEDED,
        30,
        3000,
    )
    assert_predictions(read_output(out), x, np.arange(3000))


def _wait(condition: Any, timeout_s: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_worker_processes_on_postgresql_and_sqlite(
    registry_url: str, tabular_repo: Path, tmp_path: Path
) -> None:
    registry = make_registry(registry_url, tabular_repo)
    service = JobService(registry, str(tmp_path), str(tmp_path / "cache"), in_server=True)
    x = features(4000, seed=11)
    path = write_parquet(tmp_path / "in.parquet", x, row_group=500)
    out = tmp_path / "out"
    job = run(service, inputs=[str(path)], output=str(out), passthrough=["id"],
              chunk_rows=500, parallelism=2)  # fmt: skip
    registry.close()
    assert (job.state, job.rows_done) == (JobState.SUCCEEDED, 4000), job.error
    assert_predictions(read_output(out), x, np.arange(4000))


class FlakyRuntime(Runtime):
    """Fails on any batch holding a row whose first feature is above 2 (a model bug)."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.config = inner.config

    def load(self) -> None: ...

    def unload(self) -> None:
        self.inner.unload()

    def signature(self) -> Any:
        return self.inner.signature()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if (inputs["x"][:, 0] > 2).any():
            raise ValueError("feature 0 out of range")
        return self.inner.infer(inputs)


def test_rows_the_model_fails_on_are_found_by_bisection(registry: Any, tmp_path: Path) -> None:
    def factory(spec: JobSpec, runtime: Runtime | None) -> Engine:
        assert runtime is not None  # a fresh job is planned with a loaded model
        return LocalEngine(1, in_process=True, runtime=FlakyRuntime(runtime))

    service = JobService(registry, str(tmp_path), str(tmp_path / "cache"), in_server=False,
                         engine_factory=factory)  # fmt: skip
    x = features(1000, seed=2)
    path = write_parquet(tmp_path / "in.parquet", x)
    job = run(service, inputs=[str(path)], output=str(tmp_path / "out"), passthrough=["id"],
              batch_size=256, max_error_rate=0.1)  # fmt: skip
    bad = np.flatnonzero(x[:, 0] > 2)
    assert len(bad) > 0
    assert (job.state, job.rows_failed) == (JobState.SUCCEEDED, len(bad))
    errors = read_errors(tmp_path / "out")
    assert [e["id"] for e in errors] == bad.tolist()
    assert "the model failed on this row: ValueError: feature 0 out of range" in str(
        errors[0]["reason"]
    )
    assert_predictions(read_output(tmp_path / "out"), x, np.setdiff1d(np.arange(1000), bad))
