"""The Ray engine on a local Ray with 2 CPUs gives the local engine's outputs exactly."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
from jobdata import assert_predictions, features, read_output, write_csv

from inferd.jobs import JobService, JobState

ray = pytest.importorskip("ray")


BOUND_S = 120  # Ray start, two jobs and shutdown take about 20 s on 2 cores


def _start_ray() -> None:
    # Ray waits a fixed 30 s for its raylet to register; on a busy 2-core machine the first start
    # in a fresh environment has run past that (once in a fresh clone's suite). The engine is not
    # what is being waited for here, so a second start is allowed; the test itself never retries.
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as err:
        if "timed out during startup" not in str(err):
            raise
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


def _timed_out(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"the Ray test ran past {BOUND_S} s")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs; everything using it must end within BOUND_S."""
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(BOUND_S)
    try:
        _start_ray()
        yield
        ray.shutdown()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.slow
def test_ray_engine_matches_local_engine(
    local_ray: None, service: JobService, tmp_path: Path
) -> None:
    x = features(5000, seed=9)
    path = write_csv(tmp_path / "in.csv", x)
    lines = path.read_text().splitlines()
    lines[1 + 77] = "77,oops"  # one bad row: the same errors file from both engines
    path.write_text("\n".join(lines) + "\n")
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        spec = {"model": "tabular", "inputs": [str(path)], "output": str(out),
                "passthrough": ["id"], "chunk_rows": 1000, "engine": engine}  # fmt: skip
        job = service.run_here(service.submit(spec).id, threading.Event())
        assert (job.state, job.rows_done, job.rows_failed) == (JobState.SUCCEEDED, 4999, 1), (
            job.error
        )
        outputs[engine] = out
    local, distributed = read_output(outputs["local"]), read_output(outputs["ray"])
    assert distributed.equals(local)
    assert_predictions(distributed, x, np.setdiff1d(np.arange(5000), [77]))
    parts = {e: sorted(p.name for p in outputs[e].glob("part-*")) for e in outputs}
    assert parts["ray"] == parts["local"] == [f"part-00000{i}.parquet" for i in range(5)]
    errors = {e: (outputs[e] / "_errors" / "part-000000.jsonl").read_text() for e in outputs}
    assert errors["ray"] == errors["local"]
    assert json.loads(errors["ray"])["row"] == 77
    manifests = {e: json.loads((outputs[e] / "_manifest.json").read_text()) for e in outputs}
    assert manifests["ray"]["engine"] == "ray"
    assert manifests["ray"]["parts"] == manifests["local"]["parts"]
