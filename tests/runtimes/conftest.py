"""Session fixtures: tiny real models of every framework, each built once and on first use.

Frameworks are imported inside the builders, so a test file that needs only scikit-learn
never pays for importing TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.models import (
    ARTIFACTS,
    build_lightgbm_classifier,
    build_linear,
    build_mlp_tensorflow,
    build_mlp_torch_export,
    build_mlp_torchscript,
    build_sklearn_classifier,
    build_sklearn_forest,
    build_xgboost_classifier,
    classification_data,
    mlp_weights,
)

Weights = list[tuple[np.ndarray, np.ndarray]]


def _cached(root: Path, build: Callable[[str, Path], Any]) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            path = root / kind / "1" / ARTIFACTS.get(kind, kind)
            build(kind, path)
            built[kind] = path
        return built[kind]

    return get


@pytest.fixture(scope="session")
def linear_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``linear_model(platform)``: the path of y = 2x + 1 saved in that platform's format."""
    return _cached(tmp_path_factory.mktemp("linear"), build_linear)


@pytest.fixture(scope="session")
def mlp() -> Weights:
    """Weights of the 16 -> 32 -> 4 ReLU MLP."""
    return mlp_weights()


@pytest.fixture(scope="session")
def mlp_model(tmp_path_factory: pytest.TempPathFactory, mlp: Weights) -> Callable[[str], Path]:
    """``mlp_model(platform)`` for torchscript, torch_export and tensorflow."""
    builders = {
        "torchscript": build_mlp_torchscript,
        "torch_export": build_mlp_torch_export,
        "tensorflow": build_mlp_tensorflow,
    }
    return _cached(tmp_path_factory.mktemp("mlp"), lambda kind, path: builders[kind](path, mlp))


@pytest.fixture(scope="session")
def classes_data() -> tuple[np.ndarray, np.ndarray]:
    """1,000 rows of 6 features and 3 classes."""
    return classification_data()


@pytest.fixture(scope="session")
def classifier(
    tmp_path_factory: pytest.TempPathFactory, classes_data: tuple[np.ndarray, np.ndarray]
) -> Callable[[str], tuple[Path, Any]]:
    """``classifier(kind)`` -> (artifact, fitted estimator) for sklearn, sklearn_forest,
    xgboost (JSON), xgboost_ubj, xgboost_binary, lightgbm and lightgbm_binary."""
    x, y = classes_data
    binary = (y == 2).astype(np.int64)
    builders: dict[str, tuple[str, Callable[[Path], Any]]] = {
        "sklearn": ("model.skops", lambda p: build_sklearn_classifier(p, x, y)),
        "sklearn_forest": ("model.skops", lambda p: build_sklearn_forest(p, x, y)),
        "xgboost": ("model.json", lambda p: build_xgboost_classifier(p, x, y)),
        "xgboost_ubj": ("model.ubj", lambda p: build_xgboost_classifier(p, x, y)),
        "xgboost_binary": ("model.json", lambda p: build_xgboost_classifier(p, x, binary)),
        "lightgbm": ("model.txt", lambda p: build_lightgbm_classifier(p, x, y)),
        "lightgbm_binary": ("model.txt", lambda p: build_lightgbm_classifier(p, x, binary)),
    }
    root = tmp_path_factory.mktemp("classifiers")
    built: dict[str, tuple[Path, Any]] = {}

    def get(kind: str) -> tuple[Path, Any]:
        if kind not in built:
            name, build = builders[kind]
            path = root / kind / "1" / name
            built[kind] = (path, build(path))
        return built[kind]

    return get
