"""TableStore on SQLite, RowLayout round trips, and the LookupBatcher's joining rule."""

import asyncio
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from inferd.errors import InvalidInput
from inferd.registry import Registry
from inferd.resilience.layout import OutputColumn, RowLayout, answer_shapes
from inferd.resilience.lookup import LookupBatcher
from inferd.resilience.tables import (
    RowReader,
    TableNotFound,
    TableRecord,
    TableStore,
    new_table_id,
)

COLUMNS = (OutputColumn("y", "<f4", (2,)), OutputColumn("k", "<i8", ()))


@pytest.fixture
def tables(registry_url: str) -> Iterator[TableStore]:
    """Table records and rows on SQLite and on PostgreSQL."""
    registry = Registry(registry_url)
    yield TableStore(registry)
    registry.close()


def record(version: int = 1) -> TableRecord:
    return TableRecord(new_table_id(), "m", version, "j-1", "id", "db", "d", COLUMNS, 100.0, 60.0)


def test_layout_round_trips_rows_and_refuses_bytes_outputs() -> None:
    layout = RowLayout(COLUMNS)
    arrays = {"y": np.arange(6, dtype=np.float32).reshape(3, 2), "k": np.array([7, 8, 9])}
    rows = layout.encode(arrays)
    assert [len(r) for r in rows] == [16, 16, 16]
    back = layout.decode([rows[2], rows[0]])
    np.testing.assert_array_equal(back["y"], [[4, 5], [0, 1]])
    np.testing.assert_array_equal(back["k"], [9, 7])
    assert layout.decode(rows[:1], {"k": (1,)})["k"].shape == (1, 1)
    with pytest.raises(ValueError, match="rows of 16 bytes"):
        layout.decode([b"short"])
    with pytest.raises(InvalidInput, match=r"output 's'.*numeric"):
        RowLayout([OutputColumn("s", "|O", ())])


def test_answer_shapes_follow_the_signature_only_where_sizes_agree() -> None:
    shapes = answer_shapes(COLUMNS, {"y": (1, 2), "k": (3,)})
    assert shapes == {"y": (1, 2)}  # k: 3 values per row declared, 1 stored
    assert answer_shapes(COLUMNS, {"y": (-1,)}) == {}


def test_a_publish_replaces_the_active_table_of_its_version_only(tables: TableStore) -> None:
    first, other = tables.begin(record()), tables.begin(record(version=2))
    assert tables.active("m", 1) is None  # loading is not active
    tables.write_rows(first.id, [("a", b"1" * 16), ("b", b"2" * 16)])
    assert tables.activate(first.id, 2) == []
    tables.activate(other.id, 0)
    second = tables.begin(record())
    replaced = tables.activate(second.id, 0)
    assert [r.id for r in replaced] == [first.id]
    active = tables.active("m", 1)
    assert active is not None
    assert active.id == second.id
    assert active.outputs == COLUMNS
    assert tables.get(first.id).state == "replaced"
    assert tables.active("m", 2) is not None
    assert tables.lookup(first.id, ["a", "b", "zzz"]) == {"a": b"1" * 16, "b": b"2" * 16}
    assert {r.id for r in tables.of_job("j-1")} == {first.id, other.id, second.id}
    tables.remove(first.id)
    assert tables.lookup(first.id, ["a"]) == {}
    with pytest.raises(TableNotFound):
        tables.get(first.id)


def test_rows_are_deleted_in_batches_and_looked_up_past_the_parameter_limit(
    tables: TableStore,
) -> None:
    table = tables.begin(record())
    keys = [f"u{i}" for i in range(1200)]
    tables.write_rows(table.id, [(k, k.encode()) for k in keys])
    assert len(tables.lookup(table.id, keys)) == 1200  # three SELECTs of at most 500 keys
    reader = RowReader(tables)  # the serving path's reads, on the driver's connection
    assert reader.lookup(table.id, ["u1", "u1199", "none"]) == {"u1": b"u1", "u1199": b"u1199"}
    assert len(reader.lookup(table.id, keys)) == 1200
    tables.delete_rows(table.id, batch=500)
    assert tables.lookup(table.id, keys) == {}
    assert reader.lookup(table.id, keys) == {}  # a read after the delete sees it
    reader.close()


async def test_lookups_in_flight_make_the_next_ones_wait_and_join() -> None:
    calls: list[list[str]] = []
    gate = asyncio.Event()

    async def fetch(table: str, keys: Sequence[str]) -> dict[str, bytes]:
        calls.append(list(keys))
        await gate.wait()
        return {k: k.encode() for k in keys if k != "none"}

    batcher = LookupBatcher(fetch, max_keys=3)
    first = asyncio.create_task(batcher.get("t", ["a"]))
    await asyncio.sleep(0)  # the first call is in flight
    rest = [asyncio.create_task(batcher.get("t", [k])) for k in ("b", "c", "d", "none")]
    await asyncio.sleep(0)
    gate.set()
    assert (await first) == {"a": b"a"}
    found = await asyncio.gather(*rest)
    assert calls == [["a"], ["b", "c", "d"], ["none"]]  # joined, at most max_keys per call
    assert found[0]["b"] == b"b"
    assert "none" not in found[3]


async def test_a_failed_store_call_reaches_every_request_it_served() -> None:
    async def fetch(table: str, keys: Sequence[str]) -> dict[str, bytes]:
        raise ConnectionError("down")

    batcher = LookupBatcher(fetch)
    results = await asyncio.gather(batcher.get("t", ["a"]), batcher.get("t", ["b"]),
                                   return_exceptions=True)  # fmt: skip
    assert all(isinstance(r, ConnectionError) for r in results)
