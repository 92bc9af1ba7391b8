"""XGBoost and LightGBM: the boosters' own TreeSHAP, checked against shap and the margin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import shap
from fixtures.models import (
    build_lightgbm_classifier,
    build_xgboost_classifier,
    classification_data,
    load_runtime,
)

from inferd.types import InferenceResponse

Explain = Callable[..., Awaitable[InferenceResponse]]

X, Y = classification_data(rows=400)


@pytest.mark.parametrize("classes", [2, 3])
async def test_xgboost_contributions_add_up_to_the_margin(
    tmp_path: Path, explain: Explain, classes: int
) -> None:
    labels = Y if classes == 3 else (Y > 0).astype(np.int64)
    model = build_xgboost_classifier(tmp_path / "1" / "model.json", X, labels, trees=10)
    runtime = load_runtime("xgboost", tmp_path / "1" / "model.json")
    x = X[:25].astype(np.float32)
    found = await explain(runtime, "xgboost", x)
    attributions, base = found.outputs["attributions"], found.outputs["base_value"]
    margin = runtime.infer({"x": x})["margin"]
    expected_shape = (25, 6) if classes == 2 else (25, 3, 6)
    assert attributions.shape == expected_shape
    assert base.shape == expected_shape[:-1]
    np.testing.assert_allclose(attributions.sum(axis=-1) + base, margin, atol=1e-5)
    reference = np.asarray(shap.TreeExplainer(model).shap_values(x))
    if classes == 3:  # shap: [rows, features, classes]
        reference = reference.transpose(0, 2, 1)
    np.testing.assert_allclose(attributions, reference, atol=1e-5)
    assert found.parameters == {
        "explainer": "xgboost_tree_shap", "explained": "margin", "exact": True
    }  # fmt: skip


@pytest.mark.parametrize("classes", [2, 3])
async def test_lightgbm_contributions_add_up_to_the_raw_score(
    tmp_path: Path, explain: Explain, classes: int
) -> None:
    labels = Y if classes == 3 else (Y > 0).astype(np.int64)
    model = build_lightgbm_classifier(tmp_path / "1" / "model.txt", X, labels, trees=10)
    runtime = load_runtime("lightgbm", tmp_path / "1" / "model.txt")
    found = await explain(runtime, "lightgbm", X[:25])
    attributions, base = found.outputs["attributions"], found.outputs["base_value"]
    raw = model.booster_.predict(X[:25], raw_score=True)
    assert attributions.shape == ((25, 6) if classes == 2 else (25, 3, 6))
    np.testing.assert_allclose(attributions.sum(axis=-1) + base, raw, atol=1e-5)
    reference = shap.TreeExplainer(model.booster_)(X[:25]).values
    if classes == 3:
        reference = reference.transpose(0, 2, 1)
    np.testing.assert_allclose(attributions, reference, atol=1e-6)
    assert found.parameters["explainer"] == "lightgbm_tree_shap"
