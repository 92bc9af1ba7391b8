"""Input files and checks shared by the batch job tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from inferd.jobs.examples import tabular_reference
from inferd.registry import Registry
from inferd.serving.importer import RepositoryImporter

FEATURES = [f"f{i}" for i in range(16)]


def make_registry(url: str, repo: Path) -> Registry:
    """A registry at ``url`` with the models of ``repo`` imported."""
    registry = Registry(url)
    assert RepositoryImporter(repo, registry).import_all() == {}
    return registry


def features(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 16)).astype(np.float32)


def feature_table(x: np.ndarray, first_id: int = 0) -> pa.Table:
    ids = np.arange(first_id, first_id + len(x), dtype=np.int64)
    return pa.table({"id": ids, **{name: x[:, i] for i, name in enumerate(FEATURES)}})


def write_parquet(path: Path, x: np.ndarray, first_id: int = 0, row_group: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(feature_table(x, first_id), path, row_group_size=row_group)
    return path


def write_csv(path: Path, x: np.ndarray, first_id: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id," + ",".join(FEATURES)]
    lines += [f"{first_id + i}," + ",".join(repr(float(v)) for v in row) for i, row in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, x: np.ndarray, first_id: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": first_id + i, **{n: float(v) for n, v in zip(FEATURES, row, strict=True)}}
            for i, row in enumerate(x)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_output(folder: Path) -> pa.Table:
    """Every part of a job's output, sorted by id."""
    parts = sorted(folder.glob("part-*"))
    if parts and parts[0].suffix == ".jsonl":
        rows = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
        table = pa.Table.from_pylist(rows)
    else:
        table = pa.concat_tables([pq.read_table(p) for p in parts])
    return table.sort_by("id")


def read_errors(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted((folder / "_errors").glob("*.jsonl"))
            for line in p.read_text().splitlines()]  # fmt: skip


def assert_predictions(table: pa.Table, x: np.ndarray, ids: np.ndarray) -> None:
    """Every id exactly once, and y equal to direct inference on its row."""
    got = table.column("id").to_numpy()
    assert len(got) == len(ids)
    np.testing.assert_array_equal(got, np.sort(ids))
    expected = tabular_reference(x[np.sort(ids)])[:, 0]
    np.testing.assert_allclose(table.column("y").to_numpy(), expected, rtol=1e-5, atol=1e-5)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
