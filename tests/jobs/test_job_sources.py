"""Finding input files, planning chunks, and reading every chunk back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jobdata import FEATURES, features, write_csv, write_jsonl, write_parquet

from inferd.errors import InvalidInput
from inferd.jobs.engine import group_runs
from inferd.jobs.files import expand_inputs
from inferd.jobs.reading import ChunkReader
from inferd.jobs.sources import file_schema, header_end, plan_file

SCHEMA = pa.schema([("id", pa.int64()), *[(n, pa.float64()) for n in FEATURES]])


def test_expand_inputs_globs_folders_and_uris(tmp_path: Path) -> None:
    x = features(10)
    a = write_parquet(tmp_path / "d" / "a.parquet", x)
    b = write_parquet(tmp_path / "d" / "b.parquet", x)
    (tmp_path / "d" / "_SUCCESS").write_text("")
    by_glob = expand_inputs([str(tmp_path / "d" / "*.parquet")])
    assert [f.uri for f in by_glob] == [str(a), str(b)]
    assert [f.uri for f in expand_inputs([str(tmp_path / "d")])] == [str(a), str(b)]
    assert [f.uri for f in expand_inputs([f"file://{a}", str(a)])] == [str(a)]
    assert by_glob[0].format == "parquet"
    assert by_glob[0].size == a.stat().st_size
    with pytest.raises(InvalidInput, match="nothing at"):
        expand_inputs([str(tmp_path / "nope*.csv")])
    (tmp_path / "z.csv.gz").write_bytes(b"")
    with pytest.raises(InvalidInput, match="compressed"):
        expand_inputs([str(tmp_path / "z.csv.gz")])
    (tmp_path / "z.txt").write_text("a\n")
    with pytest.raises(InvalidInput, match="--input-format"):
        expand_inputs([str(tmp_path / "z.txt")])
    assert expand_inputs([str(tmp_path / "z.txt")], "csv")[0].format == "csv"


def test_parquet_plan_merges_small_and_splits_large_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table({"id": np.arange(2350)})
    with pq.ParquetWriter(path, table.schema) as writer:
        for lo, hi in [(0, 100), (100, 200), (200, 300), (300, 2300), (2300, 2350)]:
            writer.write_table(table.slice(lo, hi - lo))
    file = expand_inputs([str(path)])[0]
    chunks = plan_file(file, 0, 5, 250)
    pieces = [(c.start_row, c.num_rows, c.loc_start, c.loc_end) for c in chunks]
    assert pieces[:1] == [(0, 200, 0, 2)]  # two small groups merged, the third would overflow
    assert pieces[1] == (200, 100, 2, 3)
    assert [p[1] for p in pieces[2:10]] == [250] * 8
    assert {p[2:] for p in pieces[2:10]} == {(3, 4)}
    assert pieces[10] == (2300, 50, 4, 5)
    assert [c.seq for c in chunks] == list(range(5, 16))
    assert [len(r) for r in group_runs(chunks)] == [1, 1, 8, 1]
    reader = ChunkReader([file], pa.schema([("id", pa.int64())]), [0])
    order = chunks[::-1] + chunks  # out of order first, then in order: same rows either way
    for chunk in order:
        got = reader.read(chunk).table.column("id").to_numpy()
        np.testing.assert_array_equal(
            got, np.arange(chunk.start_row, chunk.start_row + chunk.num_rows)
        )


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_chunks_cover_every_row_once(tmp_path: Path, fmt: str) -> None:
    x = features(1003)
    write = {"parquet": write_parquet, "csv": write_csv, "jsonl": write_jsonl}[fmt]
    file = expand_inputs([str(write(tmp_path / f"in.{fmt}", x))])[0]
    assert file_schema(file).names == ["id", *FEATURES]
    chunks = plan_file(file, 0, 0, 100)
    assert sum(c.num_rows for c in chunks) == 1003
    assert max(c.num_rows for c in chunks) <= 100
    reader = ChunkReader([file], SCHEMA, [header_end(file)])
    tables = [reader.read(c) for c in chunks]
    ids = np.concatenate([t.table.column("id").to_numpy() for t in tables])
    np.testing.assert_array_equal(ids, np.arange(1003))
    rows = np.concatenate([t.rows for t in tables])
    np.testing.assert_array_equal(rows, np.arange(1003))
    got = np.concatenate([t.table.column("f3").to_numpy() for t in tables])
    np.testing.assert_allclose(got, x[:, 3], rtol=1e-6)
