"""Resilience.run answering from precomputed tables in a real SQLite registry: hits, misses,
stale tables, version isolation, refresh after a new publish, and lookups joined under load."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest

from inferd.config import parse_model_config
from inferd.errors import InvalidInput
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import decode_infer_request
from inferd.registry import Registry
from inferd.resilience.layer import Resilience
from inferd.resilience.layout import OutputColumn, RowLayout
from inferd.resilience.precomputed import entity_ids
from inferd.resilience.tables import RowReader, TableRecord, TableStore, new_table_id
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest, InferenceResponse, Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 2)),), (TensorSpec("y", "FP32", (-1, 1)),))
ON = {"precomputed": {"enabled": True}}
NOW = 1_000_000.0


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[TableStore]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield TableStore(registry)
    registry.close()


def version(label: int, digest: str = "d1", **config: Any) -> ModelVersion:
    cfg = parse_model_config({"platform": "python", **config}, "test", "m")
    return ModelVersion("m", label, cfg, Path("/none"), digest=digest, signature=SIGNATURE)


def publish(
    tables: TableStore, label: int, values: dict[str, float], digest: str = "d1",
    computed_at: float = NOW, max_age_s: float | None = None,
) -> TableRecord:  # fmt: skip
    """A db table of model m version ``label``: entity -> y (stored as a scalar column)."""
    columns = (OutputColumn("y", "<f4", ()),)
    record = TableRecord(new_table_id(), "m", label, "j-1", "user_id", "db", digest, columns,
                         computed_at, max_age_s)  # fmt: skip
    tables.begin(record)
    rows = RowLayout(columns).encode({"y": np.array(list(values.values()), np.float32)})
    tables.write_rows(record.id, list(zip(values, rows, strict=True)))
    tables.activate(record.id, len(values))
    return record


class Online:
    """The data plane's run: counts calls and answers y = -1 for every row."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, v: ModelVersion, request: InferenceRequest, start: float) -> Any:
        self.calls += 1
        rows = len(request.inputs["x"])
        return InferenceResponse(v.name, v.label, {"y": np.full((rows, 1), -1, np.float32)})

    async def resolve(self, name: str, label: str | None) -> ModelVersion:
        raise AssertionError("no fallback in these tests")


def req(entity: Any = None, rows: int = 1) -> InferenceRequest:
    params = {} if entity is None else {"entity_id": entity}
    x = np.zeros((rows, 2), np.float32)
    return InferenceRequest("m", None, {"x": x}, parameters=params)


async def ask(layer: Resilience, v: ModelVersion, online: Online, r: InferenceRequest) -> Any:
    return await layer.run(v, r, time.perf_counter(), online.run, online.resolve)


def counters(layer: Resilience) -> str:
    return generate_latest(layer.metrics.registry).decode()


async def test_an_entity_in_the_table_is_answered_without_inference(tables: TableStore) -> None:
    publish(tables, 1, {"u1": 0.25, "u2": 0.5})
    layer, online = Resilience(tables=tables, wall=Clock(NOW + 10)), Online()
    response = await ask(layer, version(1, **ON), online, req("u2"))
    assert online.calls == 0
    assert response.parameters == {"served_from": "precomputed"}
    assert response.outputs["y"].shape == (1, 1)  # the signature's [-1, 1], not the scalar column
    np.testing.assert_array_equal(response.outputs["y"], [[0.5]])
    both = await ask(layer, version(1, **ON), online, req(["u1", "u2"], rows=2))
    np.testing.assert_array_equal(both.outputs["y"], [[0.25], [0.5]])
    assert 'inferd_precomputed_hits_total{model="m",version="1"} 2.0' in counters(layer)


async def test_a_missing_id_or_no_table_runs_online_and_counts_a_miss(tables: TableStore) -> None:
    publish(tables, 1, {"u1": 0.25})
    layer, online = Resilience(tables=tables, wall=Clock(NOW)), Online()
    partly = await ask(layer, version(1, **ON), online, req(["u1", "nobody"], rows=2))
    assert online.calls == 1
    assert "served_from" not in partly.parameters
    np.testing.assert_array_equal(partly.outputs["y"], [[-1], [-1]])
    await ask(layer, version(2, **ON), online, req("u1"))  # version 2 has no table
    assert online.calls == 2
    text = counters(layer)
    assert 'inferd_precomputed_misses_total{model="m",version="1"} 1.0' in text
    assert 'inferd_precomputed_misses_total{model="m",version="2"} 1.0' in text


async def test_no_lookup_without_an_entity_id_or_when_the_model_has_it_off(
    tables: TableStore,
) -> None:
    publish(tables, 1, {"u1": 0.25})
    layer, online = Resilience(tables=tables, wall=Clock(NOW)), Online()
    await ask(layer, version(1, **ON), online, req(None))
    await ask(layer, version(1), online, req("u1"))  # precomputed off by default
    assert online.calls == 2
    assert "inferd_precomputed_misses_total{" not in counters(layer)


async def test_entries_older_than_the_max_age_are_not_served(tables: TableStore) -> None:
    publish(tables, 1, {"u1": 0.25}, max_age_s=3600)
    wall, online = Clock(NOW + 3599), Online()
    layer = Resilience(tables=tables, wall=wall)
    assert (await ask(layer, version(1, **ON), online, req("u1"))).parameters
    wall.now = NOW + 3601
    stale = await ask(layer, version(1, **ON), online, req("u1"))
    assert online.calls == 1
    assert not stale.parameters
    # model.yaml's max_age_s applies when it is the smaller one
    capped = {"precomputed": {"enabled": True, "max_age_s": 60}}
    wall.now = NOW + 61
    await ask(layer, version(1, **capped), online, req("u1"))
    assert online.calls == 2
    assert 'inferd_precomputed_stale_total{model="m",version="1"} 2.0' in counters(layer)


async def test_another_versions_table_or_artifact_is_never_served(tables: TableStore) -> None:
    publish(tables, 1, {"u1": 0.25})
    publish(tables, 2, {"u1": 0.75}, digest="d2")
    layer, online = Resilience(tables=tables, wall=Clock(NOW)), Online()
    one = await ask(layer, version(1, **ON), online, req("u1"))
    two = await ask(layer, version(2, digest="d2", **ON), online, req("u1"))
    np.testing.assert_array_equal(one.outputs["y"], [[0.25]])
    np.testing.assert_array_equal(two.outputs["y"], [[0.75]])
    # version 3 re-registered under label 2's table? Its digest differs: not served.
    publish(tables, 3, {"u1": 0.5}, digest="other-artifact")
    await ask(layer, version(3, digest="d3", **ON), online, req("u1"))
    assert online.calls == 1


async def test_a_new_publish_is_seen_after_refresh_s(tables: TableStore) -> None:
    publish(tables, 1, {"u1": 0.25})
    clock, online = Clock(), Online()
    layer = Resilience(clock=clock, tables=tables, wall=Clock(NOW))
    v = version(1, precomputed={"enabled": True, "refresh_s": 5})
    assert (await ask(layer, v, online, req("u1"))).outputs["y"][0, 0] == 0.25
    publish(tables, 1, {"u1": 0.5})  # replaces the active table; its rows are new
    clock.now = 6.0
    seen = [float((await ask(layer, v, online, req("u1"))).outputs["y"][0, 0])]
    for _ in range(200):  # the refresh reads the registry in a thread, in the background
        await asyncio.sleep(0.01)
        seen.append(float((await ask(layer, v, online, req("u1"))).outputs["y"][0, 0]))
        if seen[-1] == 0.5:
            break
    assert seen[0] == 0.25
    assert seen[-1] == 0.5


async def test_a_malformed_entity_id_names_the_parameter(tables: TableStore) -> None:
    layer, online = Resilience(tables=tables), Online()
    with pytest.raises(InvalidInput, match=r"parameters\.entity_id.*2 entity id.*got 1"):
        await ask(layer, version(1, **ON), online, req("u1", rows=2))
    with pytest.raises(InvalidInput, match=r"parameters\.entity_id.*a string.*dict"):
        await ask(layer, version(1, **ON), online, req({"id": 1}))


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Keys per database read of precomputed rows, from now on."""
    reads: list[int] = []
    real = RowReader.lookup

    def counted(self: RowReader, table_id: str, keys: Any) -> dict[str, bytes]:
        reads.append(len(keys))
        return real(self, table_id, keys)

    monkeypatch.setattr(RowReader, "lookup", counted)
    return reads


async def test_concurrent_lookups_share_database_reads(
    tables: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(tables, 1, {f"u{i}": float(i) for i in range(200)})
    layer, online = Resilience(tables=tables, wall=Clock(NOW)), Online()
    v = version(1, precomputed={"enabled": True, "local_bytes": 0})  # every row from the database
    await ask(layer, v, online, req("u0"))  # the table record is known
    reads = counting_reads(monkeypatch)
    answers = await asyncio.gather(*(ask(layer, v, online, req(f"u{i}")) for i in range(200)))
    assert [a.outputs["y"][0, 0] for a in answers] == [float(i) for i in range(200)]
    assert online.calls == 0
    assert sum(reads) == 200
    assert len(reads) < 10
    await layer.close()


async def test_rows_read_once_are_answered_from_the_process(
    tables: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(tables, 1, {"u1": 0.25, "u2": 0.5, "u3": 0.75})
    layer, online = Resilience(tables=tables, wall=Clock(NOW)), Online()
    reads = counting_reads(monkeypatch)
    first = await ask(layer, version(1, **ON), online, req(["u1", "u2"], rows=2))
    again = [await ask(layer, version(1, **ON), online, req(k)) for k in ("u2", "u1", "u2")]
    both = await ask(layer, version(1, **ON), online, req(["u2", "u1"], rows=2))
    assert reads == [2]  # the first request's two rows; every later answer came from memory
    np.testing.assert_array_equal(first.outputs["y"], [[0.25], [0.5]])
    assert [float(a.outputs["y"][0, 0]) for a in again] == [0.5, 0.25, 0.5]
    np.testing.assert_array_equal(both.outputs["y"], [[0.5], [0.25]])
    await ask(layer, version(1, **ON), online, req(["u1", "u3"], rows=2))  # u3: not yet read
    assert reads == [2, 2]
    assert online.calls == 0
    await layer.close()


def test_grpc_callers_name_the_entity_with_a_string_or_int_parameter() -> None:
    msg = pb.ModelInferRequest(model_name="m")
    tensor = msg.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([0.0, 1.0])
    msg.parameters["entity_id"].string_param = "u-17"
    assert entity_ids(decode_infer_request(msg)) == ["u-17"]
    msg.parameters["entity_id"].int64_param = 17
    assert entity_ids(decode_infer_request(msg)) == ["17"]
