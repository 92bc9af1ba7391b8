"""Publishing job outputs as precomputed tables: rows equal the job's predictions, a new
publish replaces the version's table, Redis as the store, and the errors that name the field."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fixtures.redis import redis_server
from jobdata import features, write_parquet

from inferd.errors import InvalidInput
from inferd.jobs import JobService
from inferd.jobs.examples import tabular_reference
from inferd.jobs.publish import Publisher, max_age_s
from inferd.jobs.records import JobRecord
from inferd.resilience.layout import RowLayout
from inferd.resilience.table_redis import RedisRowReader
from inferd.resilience.tables import TableNotFound

X = features(300)


def run(service: JobService, tmp_path: Path, name: str = "out", **spec: Any) -> JobRecord:
    source = tmp_path / "in.parquet"
    if not source.exists():
        write_parquet(source, X, 0, row_group=100)
    body = {"model": "tabular", "inputs": [str(source)], "output": str(tmp_path / name),
            "passthrough": ["id"], "chunk_rows": 120, **spec}  # fmt: skip
    job = service.submit(body, "tester")
    return service.run_here(job.id, threading.Event())


def values(publisher: Publisher, table_id: str, keys: list[str]) -> np.ndarray:
    record = publisher.tables.get(table_id)
    found = publisher.tables.lookup(table_id, keys)
    return RowLayout(record.outputs).decode([found[k] for k in keys])["y"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_rows_equal_the_jobs_predictions(service: JobService, tmp_path: Path, fmt: str) -> None:
    job = run(service, tmp_path, output_format=fmt)
    publisher = Publisher(service.registry, batch_rows=64)
    table = publisher.publish(job.id, {"key": "id", "max_age": "1d"}, "tester")
    assert (table.state, table.rows, table.model, table.version) == ("active", 300, "tabular", 1)
    assert (table.store, table.key_column, table.max_age_s) == ("db", "id", 86400.0)
    assert table.digest == job.pinned["digest"]
    assert table.outputs[0].dtype == "<f4"  # model.yaml's FP32, also for JSON Lines
    keys = [str(i) for i in (0, 119, 120, 299)]
    expected = tabular_reference(X[[0, 119, 120, 299]])[:, 0]
    np.testing.assert_allclose(values(publisher, table.id, keys), expected, rtol=1e-5, atol=1e-5)
    assert publisher.tables.active("tabular", 1) == table
    assert publisher.status(job.id) == table


def test_a_new_publish_replaces_the_table_and_deletes_its_rows(
    service: JobService, tmp_path: Path
) -> None:
    job = run(service, tmp_path)
    publisher = Publisher(service.registry)
    first = publisher.publish(job.id, {"key": "id"}, "alice")
    second = publisher.publish(job.id, {"key": "id", "model": "tabular", "version": 1}, "bob")
    assert publisher.tables.get(first.id).state == "replaced"
    assert publisher.tables.lookup(first.id, ["0"]) == {}
    active = publisher.tables.active("tabular", 1)
    assert active is not None
    assert active.id == second.id
    gone = publisher.unpublish(job.id, "carol")
    assert (gone.id, gone.state) == (second.id, "deleted")
    # Each publish and each removed table is in the audit log, by whom, from what to what.
    audit = [
        (e.actor, e.action, e.version, e.from_value, e.to_value)
        for e in service.registry.audit("tabular")
        if e.action.endswith("_table")
    ]
    assert audit == [
        ("carol", "unpublish_table", 1, first.id, None),
        ("carol", "unpublish_table", 1, second.id, None),
        ("bob", "publish_table", 1, first.id, second.id),
        ("alice", "publish_table", 1, None, first.id),
    ]  # fmt: skip
    publisher.tables.remove(second.id, "dave")  # already gone: a no-op, nothing recorded
    assert service.registry.audit("tabular", limit=1)[0].actor == "carol"
    published = next(e for e in service.registry.audit("tabular") if e.action == "publish_table")
    assert published.detail == {"job": job.id, "rows": second.rows, "store": "db", "key": "id"}
    assert publisher.tables.active("tabular", 1) is None
    assert publisher.tables.lookup(second.id, ["0"]) == {}
    with pytest.raises(TableNotFound, match=f"published from job '{job.id}'"):
        publisher.status(job.id)


def test_errors_name_the_field_what_was_expected_and_what_came(
    service: JobService, tmp_path: Path
) -> None:
    job = run(service, tmp_path)
    publisher = Publisher(service.registry)
    cases = [
        ({"key": "user_id"}, r"key: expected a column job \S+ passed through \(id\); run the "
                             r"job with --passthrough user_id, got 'user_id'"),
        ({"key": "id", "version": 2}, r"version: expected 1, the version job \S+ ran, got 2"),
        ({"key": "id", "model": "mlp"}, r"model: expected 'tabular', the model job \S+ ran, "
                                        r"got mlp"),
        ({"key": "id", "store": "redis"}, r"store: expected a Redis URL"),
        ({"key": "id", "max_age": "soon"}, r"max_age: expected a duration .*, got 'soon'"),
        ({"key": "id", "store": "s3"}, r"publish\.store: .*'db' or 'redis'"),
    ]  # fmt: skip
    for body, message in cases:
        with pytest.raises(InvalidInput, match=message):
            publisher.publish(job.id, body)
    body = {"model": "tabular", "inputs": [str(tmp_path / "in.parquet")],
            "output": str(tmp_path / "queued"), "passthrough": ["id"]}  # fmt: skip
    queued = service.submit(body)
    with pytest.raises(InvalidInput, match=r"expected a job that succeeded, got queued"):
        publisher.publish(queued.id, {"key": "id"})
    assert publisher.tables.active("tabular", 1) is None
    assert [max_age_s("90s"), max_age_s(30), max_age_s("2w")] == [90, 30, 1_209_600]


def test_duplicate_ids_fail_the_publish_and_leave_no_rows(
    service: JobService, tmp_path: Path
) -> None:
    write_parquet(tmp_path / "in.parquet", np.concatenate([X[:50], X[:50]]), 0)
    write_parquet(tmp_path / "dup" / "a.parquet", X[:50], 0)
    write_parquet(tmp_path / "dup" / "b.parquet", X[:50], 0)
    job = run(service, tmp_path, inputs=[str(tmp_path / "dup")])
    publisher = Publisher(service.registry, batch_rows=20)
    with pytest.raises(InvalidInput, match=r"column 'id': expected one row per id, got '0' in"):
        publisher.publish(job.id, {"key": "id"})
    failed = publisher.status(job.id)
    assert failed.state == "failed"
    assert "one row per id" in failed.error
    assert publisher.tables.lookup(failed.id, ["1", "30"]) == {}  # written batches removed
    assert publisher.tables.active("tabular", 1) is None


def test_a_redis_table_is_written_in_bulk_and_removed(service: JobService, tmp_path: Path) -> None:
    job = run(service, tmp_path)
    with redis_server(tmp_path / "redis") as url:
        publisher = Publisher(service.registry, redis_url=url, batch_rows=100)
        table = publisher.publish(job.id, {"key": "id", "store": "redis"})
        assert (table.store, table.rows) == ("redis", 300)
        client = redis.Redis.from_url(url)
        assert client.dbsize() == 300
        assert publisher.tables.lookup(table.id, ["0"]) == {}  # not in the database

        async def read() -> dict[str, bytes]:
            reader = RedisRowReader(url)
            try:
                return await reader.lookup(table.id, ["7"])
            finally:
                await reader.close()

        import asyncio

        row = asyncio.run(read())["7"]
        expected = tabular_reference(X[7:8])[:, 0]
        got = RowLayout(table.outputs).decode([row])["y"]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        publisher.unpublish(job.id)
        assert client.dbsize() == 0
        client.close()


def test_the_age_counts_from_the_jobs_finish_in_any_time_zone(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = run(service, tmp_path)
    monkeypatch.setenv("TZ", "America/New_York")  # SQLite gives times back without a zone
    time.tzset()
    try:
        table = Publisher(service.registry).publish(job.id, {"key": "id"})
    finally:
        monkeypatch.undo()
        time.tzset()
    assert job.finished_at is not None
    assert 0 <= table.age_s(time.time()) < 120
