"""Session fixtures: tiny real models built once, and a repository copy per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
