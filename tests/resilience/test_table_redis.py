"""Precomputed rows in a real redis-server: bulk writes, served lookups, deletes, and a Redis
that goes away (the request is answered online, the failure counted)."""

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.redis import redis_server
from prometheus_client import generate_latest

from inferd.config import parse_model_config
from inferd.registry import Registry
from inferd.resilience.layer import Resilience
from inferd.resilience.layout import OutputColumn, RowLayout
from inferd.resilience.table_redis import RedisRowReader, RedisRowWriter
from inferd.resilience.tables import TableRecord, TableStore, new_table_id
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest, InferenceResponse, Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "FP32", (-1,)),), (TensorSpec("y", "FP32", (-1, 3)),))
COLUMNS = (OutputColumn("y", "<f4", (3,)),)


async def online(v: ModelVersion, request: InferenceRequest, start: float) -> Any:
    return InferenceResponse(v.name, v.label, {"y": np.full((1, 3), -1, np.float32)})


async def nowhere(name: str, label: str | None) -> ModelVersion:
    raise AssertionError("no fallback here")


async def test_rows_written_in_bulk_are_served_then_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    tables = TableStore(registry)
    record = TableRecord(new_table_id(), "m", 1, "j-1", "id", "redis", "d1", COLUMNS, time.time())
    values = np.arange(3 * 2500, dtype=np.float32).reshape(2500, 3)
    rows = list(zip([f"u{i}" for i in range(2500)], RowLayout(COLUMNS).encode({"y": values}),
                    strict=True))  # fmt: skip
    cfg = parse_model_config({"platform": "python", "precomputed": {"enabled": True}}, "t", "m")
    version = ModelVersion("m", 1, cfg, Path("/none"), digest="d1", signature=SIGNATURE)
    request = InferenceRequest("m", None, {"x": np.zeros(1, np.float32)},
                               parameters={"entity_id": "u2499"})  # fmt: skip
    with redis_server(tmp_path / "redis") as url:
        writer = RedisRowWriter(url)
        tables.begin(record)
        writer.write_rows(record.id, rows)
        tables.activate(record.id, len(rows))
        layer = Resilience(redis_url=url, tables=tables)
        answer = await layer.run(version, request, time.perf_counter(), online, nowhere)
        assert answer.parameters == {"served_from": "precomputed"}
        np.testing.assert_array_equal(answer.outputs["y"], values[2499:])
        reader = RedisRowReader(url)
        assert set(await reader.lookup(record.id, ["u0", "u1", "absent"])) == {"u0", "u1"}
        assert writer.delete_rows(record.id) == 2500
        assert await reader.lookup(record.id, ["u0"]) == {}
        await reader.close()
        writer.close()
    # redis-server has stopped: lookups fail, are counted (logged once), online answers
    for entity in ("u1", "u2", "u3"):
        request.parameters["entity_id"] = entity
        fallback = await layer.run(version, request, time.perf_counter(), online, nowhere)
        assert fallback.parameters == {}
        np.testing.assert_array_equal(fallback.outputs["y"], [[-1, -1, -1]])
    text = generate_latest(layer.metrics.registry).decode()
    assert 'inferd_precomputed_errors_total{store="redis"} 3.0' in text
    warnings = [r for r in caplog.records if r.name == "inferd.resilience.precomputed"]
    assert len(warnings) == 1
    assert "online inference answers" in warnings[0].getMessage()
    await layer.close()
    registry.close()
