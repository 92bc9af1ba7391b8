"""Session fixtures: tiny real models built once, and a repository copy per test."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.postgres import PostgresCluster

from inferd.serving.examples import build_linear_onnx, ensure_examples


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in example repository (linear, mlp), built once per session."""
    return ensure_examples(tmp_path_factory.mktemp("examples") / "repo")


@pytest.fixture
def repo(examples_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the examples, with a second `linear` version (y = 3x + 1)."""
    root = tmp_path / "repo"
    shutil.copytree(examples_dir, root)
    build_linear_onnx(root / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
    config = root / "linear" / "model.yaml"
    config.write_text(config.read_text() + "version_policy: all\n")
    return root


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session (Debian's packages, started by the tests)."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


_DB_COUNTER = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty registry database on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"t{os.getpid()}_{next(_DB_COUNTER)}")
