"""The same raw rows through a batch job, an online request and the drift sampler."""

import json
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fixtures.preprocess import ROWS, expected_features, raw_columns, write_credit_model

from inferd.api.app import build_app
from inferd.jobs import JobService, JobState
from inferd.monitoring.drift_profile import Profile
from inferd.monitoring.drift_sampler import DriftSampler
from inferd.registry import Registry
from inferd.serving.importer import RepositoryImporter
from inferd.settings import Settings
from inferd.types import InferenceRequest

# ROWS, then a row whose country no rule accepts: it fails alone, named.
TABLE = pa.table(
    {
        "id": [0, 1, 2, 3],
        "age": [25.0, None, 130.0, 50.0],
        "income": [0.0, 1000.0, 20.0, 1.0],
        "country": ["DE", "FR", "DE", "XX"],
    }
)


def run_job(repo: Path, tmp_path: Path) -> tuple[np.ndarray, list[dict[str, object]]]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        assert RepositoryImporter(repo, registry).import_all() == {}
        service = JobService(registry, str(tmp_path / "artifacts"), str(tmp_path / "cache"),
                             in_server=False, lease_s=5.0)  # fmt: skip
        pq.write_table(TABLE, tmp_path / "in.parquet")
        out = tmp_path / "out"
        spec = {"model": "credit", "inputs": [str(tmp_path / "in.parquet")], "output": str(out),
                "passthrough": ["id"], "max_error_rate": 0.5}  # fmt: skip
        job = service.run_here(service.submit(spec, "tester").id, threading.Event())
    finally:
        registry.close()
    assert (job.state, job.rows_done, job.rows_failed) == (JobState.SUCCEEDED, 3, 1), job.error
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*"))])
    table = table.sort_by("id")
    errors = [json.loads(line) for p in sorted((out / "_errors").glob("*.jsonl"))
              for line in p.read_text().splitlines()]  # fmt: skip
    return np.stack(table.column("y").to_numpy(zero_copy_only=False)), errors


async def test_batch_online_and_drift_see_the_same_rows(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_credit_model(repo)
    batch, errors = run_job(repo, tmp_path)
    assert [(e["row"], e["id"]) for e in errors] == [(3, 3)]
    assert "preprocessing: feature 'country': one_hot: unknown category 'XX'" in str(
        errors[0]["reason"]
    )

    app = build_app(Settings(home=tmp_path / "home", model_repository=repo))
    plane = app.dataplane
    assert await plane.start() == {}
    sampler = plane.drift = DriftSampler(None, seed=0)
    sampler.rates = {"credit": 1.0}
    try:
        response = await plane.infer(InferenceRequest("credit", None, raw_columns()), "test")
    finally:
        await plane.stop()
    online = response.outputs["y"]

    np.testing.assert_allclose(online, expected_features(), rtol=1e-6)
    np.testing.assert_array_equal(batch, online)  # bit for bit: one compiled transform

    # Drift is over the raw columns, by their names: what a training table holds.
    seen, columns = DriftSampler.batches(sampler.collect())[("credit", 1)]
    assert seen == 3
    assert columns["age"] == [25.0, None, 130.0]
    assert columns["country"] == ["DE", "FR", "DE"]
    assert columns["income"] == [0.0, 1000.0, 20.0]
    reference = Profile.of({k: np.asarray(v) for k, v in raw_columns(ROWS).items()})
    assert set(reference.inputs) == {n for n in columns if not n.startswith("output.")}
