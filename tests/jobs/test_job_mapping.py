"""Columns to model inputs (globs, list columns), bad rows with reasons, outputs to columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from inferd.errors import InvalidInput
from inferd.jobs.files import expand_inputs
from inferd.jobs.mapping import output_table, read_types, resolve_bindings, to_inputs
from inferd.jobs.reading import ChunkReader
from inferd.jobs.sources import file_schema, header_end, plan_file
from inferd.types import Signature, TensorSpec

X16 = TensorSpec("x", "FP32", (-1, 4), allow_nan=False)
SIGNATURE = Signature((X16,), (TensorSpec("y", "FP32", (-1, 1)),))


def table() -> pa.Table:
    return pa.table({
        "id": [1, 2, 3, 4],
        "a0": [0.0, 1.0, None, 3.0], "a1": [1.0, 1.0, 1.0, float("nan")],
        "b0": [2, 2, 2, 2], "b1": [3.0, 3.0, 3.0, 3.0],
        "vec": pa.array([[1, 2, 3, 4], [1, 2, 3], None, [1, None, 3, 4]], pa.list_(pa.float64())),
    })  # fmt: skip


def test_globs_and_default_binding() -> None:
    t = table()
    (b,) = resolve_bindings(SIGNATURE, t.schema, {"x": ["a*", "b?"]}, ["id"])
    assert (b.columns, b.tensor, b.row_shape) == (("a0", "a1", "b0", "b1"), False, (4,))
    (b,) = resolve_bindings(SIGNATURE, t.schema, {"x": ["vec"]}, [])
    assert (b.tensor, b.row_shape) == (True, (4,))
    one = pa.schema([("id", pa.int64()), *[(f"c{i}", pa.float32()) for i in range(4)]])
    (b,) = resolve_bindings(SIGNATURE, one, {}, ["id"])
    assert b.columns == ("c0", "c1", "c2", "c3")  # every column not passed through


def test_binding_errors_name_the_fix() -> None:
    t = table()
    with pytest.raises(InvalidInput, match="nothing matching 'z\\*'"):
        resolve_bindings(SIGNATURE, t.schema, {"x": ["z*"]}, [])
    with pytest.raises(InvalidInput, match="4 values per row"):
        resolve_bindings(SIGNATURE, t.schema, {"x": ["a*"]}, [])
    with pytest.raises(InvalidInput, match="model inputs among"):
        resolve_bindings(SIGNATURE, t.schema, {"nope": ["a0"]}, [])
    with pytest.raises(InvalidInput, match="--passthrough"):
        resolve_bindings(SIGNATURE, t.schema, {"x": ["a*", "b*"]}, ["ghost"])


def test_bad_rows_are_set_aside_with_reasons() -> None:
    t = table()
    (cols,) = resolve_bindings(SIGNATURE, t.schema, {"x": ["a*", "b*"]}, ["id"])
    inputs, reasons = to_inputs(t, [cols])
    assert reasons == {2: "column 'a0': missing",
                       3: "input 'x': NaN or Inf where the model allows none"}  # fmt: skip
    np.testing.assert_array_equal(inputs["x"], [[0, 1, 2, 3], [1, 1, 2, 3]])
    assert inputs["x"].dtype == np.float32
    assert inputs["x"].flags.c_contiguous
    (vec,) = resolve_bindings(SIGNATURE, t.schema, {"x": ["vec"]}, [])
    inputs, reasons = to_inputs(t, [vec])
    assert reasons == {1: "column 'vec': expected 4 values per row", 2: "column 'vec': missing",
                       3: "column 'vec': missing value inside the list"}  # fmt: skip
    np.testing.assert_array_equal(inputs["x"], [[1, 2, 3, 4]])


def test_output_columns() -> None:
    specs = (TensorSpec("y", "FP32", (-1, 1)), TensorSpec("p", "FP32", (-1, 3)))
    out = {"y": np.ones((2, 1), np.float32), "p": np.arange(6, dtype=np.float32).reshape(2, 3)}
    result = output_table(out, specs, pa.table({"id": [7, 8]}))
    assert result.column_names == ["id", "y", "p"]
    assert result.column("y").type == pa.float32()
    assert result.column("p").to_pylist() == [[0, 1, 2], [3, 4, 5]]
    assert result.schema.field("p").metadata == {b"shape": b"[3]"}


def test_malformed_text_rows_go_apart(tmp_path: Path) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("id,a0,a1\n1,1.5,2\n2,abc,2\n3,1\n4,2,3\n5,,1\n")
    jsonl_path = tmp_path / "bad.jsonl"
    jsonl_path.write_text('{"id":1,"a0":1,"a1":2}\n{"id":2,"a0":"x","a1":2}\nnot json\n'
                          '[1]\n{"id":5,"a0":2.5,"a1":1}\n')  # fmt: skip
    signature = Signature((TensorSpec("x", "FP32", (-1, 2)),), SIGNATURE.outputs)
    results = {}
    for path in (csv_path, jsonl_path):
        file = expand_inputs([str(path)])[0]
        bindings = resolve_bindings(signature, file_schema(file), {"x": ["a*"]}, ["id"])
        schema = read_types(bindings, file_schema(file), ["id"], text=True)
        (chunk,) = plan_file(file, 0, 0, 100)
        raw = ChunkReader([file], schema, [header_end(file)]).read(chunk)
        results[path.suffix] = raw
    csv_raw = results[".csv"]
    assert [e[0] for e in csv_raw.errors] == [1, 2]
    assert "expected double, got 'abc'" in csv_raw.errors[0][1]
    assert "expected 3 columns, got 2" in csv_raw.errors[1][1]
    assert csv_raw.table.column("id").to_pylist() == [1, 4, 5]
    assert csv_raw.rows.tolist() == [0, 3, 4]
    json_raw = results[".jsonl"]
    assert [e[0] for e in json_raw.errors] == [1, 2, 3]
    assert "not valid JSON" in json_raw.errors[1][1]
    assert "JSON object" in json_raw.errors[2][1]
    assert json_raw.table.column("id").to_pylist() == [1, 5]
