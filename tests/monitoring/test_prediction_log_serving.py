"""The prediction log inside a server: requests through the app land in the log, a failing
sink never fails a request, a batch job reads the log back, and a real `inferd serve
--workers 2` writes it and flushes it on shutdown."""

from __future__ import annotations

import errno
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from fixtures.servers import Server
from fsspec.implementations.memory import MemoryFileSystem
from prometheus_client import CollectorRegistry
from test_metric_catalog import problems

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.jobs import JobService, JobState
from inferd.monitoring.metrics import Metrics
from inferd.monitoring.prediction_log import PredictionLog
from inferd.monitoring.prediction_log_reader import read_window
from inferd.monitoring.prediction_log_writer import ParquetSink
from inferd.registry import Registry
from inferd.settings import Settings


def mlp_body(rows: int, seed: int, rid: str) -> dict[str, Any]:
    x = np.random.default_rng(seed).standard_normal((rows, 256)).astype(np.float32)
    data = x.ravel().tolist()
    return {"id": rid, "inputs": [{"name": "x", "shape": [rows, 256], "datatype": "FP32",
                                   "data": data}]}  # fmt: skip


@pytest.fixture
async def logged_app(repo: Path, tmp_path: Path) -> AsyncIterator[tuple[HttpApp, Settings]]:
    """The app with every request logged under ``tmp_path/log``."""
    settings = Settings(
        home=tmp_path / "home", model_repository=repo,
        prediction_log_uri=str(tmp_path / "log"), prediction_log_rate=1.0,
    )  # fmt: skip
    app = build_app(settings, Metrics(CollectorRegistry()))
    assert await app.dataplane.start() == {}
    try:
        yield app, settings
    finally:
        await app.dataplane.stop()


async def _send(app: HttpApp, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answers = []
        for body in bodies:
            r = await client.post("/v2/models/mlp/infer", json=body)
            assert r.status_code == 200, r.text
            answers.append(r.json())
    return answers


async def test_logged_requests_replay_through_a_batch_job(
    logged_app: tuple[HttpApp, Settings], tmp_path: Path
) -> None:
    app, settings = logged_app
    answers = await _send(app, [mlp_body(1 + i % 3, i, f"req-{i}") for i in range(12)])
    log = app.dataplane.prediction_log
    assert log is not None
    await log.flush()
    table = read_window(str(tmp_path / "log"), "mlp", 1)
    assert table.num_rows == sum(1 + i % 3 for i in range(12))
    for i, answer in enumerate(answers):  # the logged output is what the client got
        mine = table.filter(table.column("request_id").to_numpy(False) == f"req-{i}")
        got = np.stack(mine.column("output.y").to_numpy(False))
        np.testing.assert_allclose(got.ravel(), answer["outputs"][0]["data"], rtol=1e-6)
    # A batch job over the model version's folder recomputes exactly what was logged.
    registry = Registry(settings.resolved_registry_url)
    try:
        service = JobService(registry, str(tmp_path / "artifacts"), str(tmp_path / "cache"),
                             in_server=False, lease_s=5.0)  # fmt: skip
        job = service.submit({"model": "mlp", "version": 1,
                              "inputs": [str(tmp_path / "log" / "model=mlp" / "version=1")],
                              "output": str(tmp_path / "replay"), "columns": {"x": ["input.x"]},
                              "passthrough": ["request_id", "row"]}, "tester")  # fmt: skip
        job = service.run_here(job.id, threading.Event())
    finally:
        registry.close()
    assert (job.state, job.error, job.rows_failed) == (JobState.SUCCEEDED, "", 0)
    replay = pq.read_table(tmp_path / "replay").sort_by([("request_id", "ascending"),
                                                         ("row", "ascending")])  # fmt: skip
    logged = table.sort_by([("request_id", "ascending"), ("row", "ascending")])
    assert replay.column("request_id").equals(logged.column("request_id"))
    recomputed = np.stack(replay.column("y").to_numpy(False))
    np.testing.assert_allclose(recomputed, np.stack(logged.column("output.y").to_numpy(False)),
                               rtol=1e-5)  # fmt: skip


class ReadOnly(MemoryFileSystem):
    protocol = "readonly"

    def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        if "w" in mode:
            raise OSError(errno.EROFS, "Read-only file system", path)
        return super()._open(path, mode, **kw)


async def test_a_failing_sink_never_fails_a_request(
    logged_app: tuple[HttpApp, Settings],
) -> None:
    app, _ = logged_app
    registry = CollectorRegistry()
    log = PredictionLog(ParquetSink("/plog", ReadOnly()), 1.0, registry, max_pending=4)
    app.dataplane.prediction_log = log
    await _send(app, [mlp_body(2, i, f"r{i}") for i in range(6)])  # each asserts 200
    await log.flush()
    await _send(app, [mlp_body(1, 9, "after")])
    await log.close()
    value = registry.get_sample_value
    assert value("inferd_prediction_log_dropped_total", {"reason": "queue_full"}) == 2
    assert value("inferd_prediction_log_dropped_total", {"reason": "sink_error"}) == 5
    assert log.written == 0


async def test_metrics_export_the_prediction_log_families(
    logged_app: tuple[HttpApp, Settings],
) -> None:
    app, _ = logged_app
    await _send(app, [mlp_body(1, 0, "m")])
    assert app.dataplane.prediction_log is not None
    await app.dataplane.prediction_log.flush()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        text = (await client.get("/metrics")).text
    assert "inferd_prediction_log_written_total 1.0" in text
    assert "# TYPE inferd_prediction_log_dropped_total counter" in text
    found = problems(text, {"inferd_prediction_log_written_total"}, "the app with a log")
    mine = [p for p in found if p.startswith("inferd_prediction_log_")]  # other areas: theirs
    assert not mine, "\n".join(mine)  # docs/metrics.md lists both families alike


def test_inferd_serve_with_two_workers_writes_the_log(repo: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    home = tmp_path / "home"
    home.mkdir()
    extra = ["--prediction-log-uri", str(log_dir), "--prediction-log-rate", "1"]
    sent = 40
    with Server(repo, home, workers=2, extra=extra) as server, httpx.Client(
        base_url=server.url, timeout=30
    ) as client:  # fmt: skip
        for i in range(sent):
            r = client.post("/v2/models/mlp/infer", json=mlp_body(1, i, f"s{i}"))
            assert r.status_code == 200, r.text
    # SIGTERM: each worker flushed what it still held on shutdown (the timer is 30 s).
    table = read_window(str(log_dir), "mlp", 1)
    assert sorted(table.column("request_id").to_pylist()) == sorted(f"s{i}" for i in range(sent))
    names = {p.name.split("-")[1] for p in log_dir.rglob("part-*.parquet")}
    assert 1 <= len(names) <= 2  # one prefix per worker that answered


async def test_routed_requests_carry_their_experiment_and_variant(
    logged_app: tuple[HttpApp, Settings], tmp_path: Path
) -> None:
    app, _ = logged_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 headers={"x-inferd-actor": "alice"}) as client:  # fmt: skip
        variants = [{"name": "control", "version": 1, "weight": 0.5},
                    {"name": "treatment", "version": 2, "weight": 0.5}]  # fmt: skip
        r = await client.post("/v1/experiments", json={"name": "e", "model": "linear",
                                                        "variants": variants})  # fmt: skip
        assert r.status_code == 201, r.text
        exp_id = r.json()["id"]
        assert (await client.post(f"/v1/experiments/{exp_id}/start")).status_code == 200
        answers = {}
        for user in range(40):
            body = {"model_name": "linear", "input_data": {"x": [1.0]}, "user_id": f"u{user}"}
            r = await client.post("/predict", json=body)
            assert r.status_code == 200, r.text
            answers[r.json()["request_id"]] = r.json()["model_version"]
    assert app.dataplane.prediction_log is not None
    await app.dataplane.prediction_log.flush()
    seen = {}
    for version, variant in (("1", "control"), ("2", "treatment")):
        table = read_window(str(tmp_path / "log"), "linear", version)
        assert set(table.column("experiment").to_pylist()) == {exp_id}
        assert set(table.column("variant").to_pylist()) == {variant}
        seen.update(dict.fromkeys(table.column("request_id").to_pylist(), version))
    assert seen == answers  # every request once, under the version that answered it
