"""Fixtures of the batch job tests: a registry with the tabular model, and input files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jobdata import make_registry

from inferd.jobs import JobService
from inferd.jobs.examples import build_tabular_onnx
from inferd.registry import Registry

TABULAR_YAML = """\
platform: onnx
inputs:
  - {name: x, datatype: FP32, shape: [-1, 16], allow_nan: false}
outputs:
  - {name: y, datatype: FP32, shape: [-1, 1]}
"""


@pytest.fixture(scope="session")
def tabular_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with only the 16 -> 32 -> 1 tabular MLP (fast to load)."""
    root = tmp_path_factory.mktemp("jobs") / "repo"
    build_tabular_onnx(root / "tabular" / "1" / "model.onnx")
    (root / "tabular" / "model.yaml").write_text(TABULAR_YAML)
    return root


@pytest.fixture
def registry(tabular_repo: Path, tmp_path: Path) -> Iterator[Registry]:
    """A SQLite registry holding the tabular model."""
    reg = make_registry(f"sqlite:///{tmp_path / 'registry.db'}", tabular_repo)
    yield reg
    reg.close()


@pytest.fixture
def service(registry: Registry, tmp_path: Path) -> JobService:
    """A job service that runs jobs in this process (like the CLI)."""
    return JobService(registry, str(tmp_path / "artifacts"), str(tmp_path / "cache"),
                      in_server=False, lease_s=5.0)  # fmt: skip
