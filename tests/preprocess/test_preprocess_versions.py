"""Preprocessing is versioned with the model: each version keeps the block it came with."""

from pathlib import Path

import numpy as np
from fixtures.preprocess import (
    CREDIT_PY,
    CREDIT_YAML,
    expected_features,
    raw_columns,
    write_credit_model,
)
from sqlalchemy import text

from inferd.api.app import build_app
from inferd.registry import Registry
from inferd.settings import Settings
from inferd.types import InferenceRequest


async def serve_both(tmp_path: Path, repo: Path) -> dict[str, np.ndarray]:
    plane = build_app(Settings(home=tmp_path / "home", model_repository=repo)).dataplane
    assert await plane.start() == {}
    try:
        found = {}
        for v in ("1", "2"):
            if (repo / "credit" / v).exists():
                request = InferenceRequest("credit", v, raw_columns())
                found[v] = (await plane.infer(request, "test")).outputs["y"]
        return found
    finally:
        await plane.stop()


async def test_a_new_block_applies_to_the_next_version_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_credit_model(repo)
    first = await serve_both(tmp_path, repo)
    np.testing.assert_allclose(first["1"], expected_features(), rtol=1e-6)

    # A new block (std 10 -> 20) and a version 2 registered with it; version 1 keeps its own.
    (repo / "credit" / "model.yaml").write_text(CREDIT_YAML.replace("std: 10", "std: 20"))
    (repo / "credit" / "2").mkdir()
    (repo / "credit" / "2" / "model.py").write_text(CREDIT_PY)
    (repo / "credit" / "model.yaml").write_text(
        (repo / "credit" / "model.yaml").read_text() + "version_policy: all\n"
    )
    both = await serve_both(tmp_path, repo)
    np.testing.assert_array_equal(both["1"], first["1"])
    halved = expected_features().copy()
    halved[:, 0] /= 2
    np.testing.assert_allclose(both["2"], halved, rtol=1e-6)

    registry = Registry(f"sqlite:///{tmp_path / 'home' / 'inferd.db'}")
    try:
        blocks = [v.preprocessing for v in registry.list_versions("credit")]
    finally:
        registry.close()
    assert [b["features"][0]["scale"]["std"] for b in blocks if b] == [10, 20]


def test_migration_adds_the_column_to_an_existing_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    registry = Registry(url)
    registry.migrate()
    with registry.engine.begin() as conn:  # back to a registry from before migration 19
        conn.execute(text("ALTER TABLE model_versions DROP COLUMN preprocessing"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version = 19"))
    registry.close()
    registry = Registry(url)
    try:
        registry.migrate()
        registry.ensure_model("m", {"platform": "onnx", "preprocessing": {"features": [
            {"name": "a"}]}}, actor="t")  # fmt: skip
        record = registry.register_version("m", platform="onnx", artifact_uri="file:///x",
                                           digest="sha256:0", size_bytes=1)  # fmt: skip
    finally:
        registry.close()
    assert record.preprocessing == {"features": [{"name": "a"}]}
