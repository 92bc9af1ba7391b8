"""scikit-learn through shap (trees, linear models) and the kernel fallback (pipelines)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shap
import skops.io
from fixtures.models import (
    build_sklearn_classifier,
    build_sklearn_forest,
    classification_data,
    load_runtime,
)
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from inferd.types import InferenceResponse

Explain = Callable[..., Awaitable[InferenceResponse]]
X, Y = classification_data(rows=300)
TREES = {"trusted_types": ["sklearn.tree._tree.Tree"]}


def saved(tmp_path: Path, model: Any, **parameters: Any) -> Any:
    path = tmp_path / "1" / "model.skops"
    path.parent.mkdir(parents=True)
    skops.io.dump(model, str(path))
    return load_runtime("sklearn", path, parameters=parameters)


async def test_a_forest_is_explained_per_class_probability(
    tmp_path: Path, explain: Explain
) -> None:
    model = build_sklearn_forest(tmp_path / "1" / "model.skops", X, Y)
    runtime = load_runtime("sklearn", tmp_path / "1" / "model.skops", parameters=TREES)
    found = await explain(runtime, "sklearn", X[:20])
    attributions, base = found.outputs["attributions"], found.outputs["base_value"]
    assert attributions.shape == (20, 3, 6)  # [rows, classes, features]
    assert found.parameters == {
        "explainer": "shap_tree",
        "explained": "predict_proba",
        "exact": True,
    }
    np.testing.assert_allclose(
        attributions.sum(axis=-1) + base, model.predict_proba(X[:20]), atol=1e-5
    )
    reference = shap.TreeExplainer(model)(X[:20]).values.transpose(0, 2, 1)
    np.testing.assert_allclose(attributions, reference, atol=1e-12)


async def test_gradient_boosting_is_explained_in_log_odds(tmp_path: Path, explain: Explain) -> None:
    labels = (Y > 0).astype(np.int64)
    model = GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, labels)
    runtime = saved(tmp_path, model, **TREES)
    found = await explain(runtime, "sklearn", X[:20])
    attributions, base = found.outputs["attributions"], found.outputs["base_value"]
    assert attributions.shape == (20, 6)
    assert found.parameters["explained"] == "decision_function"
    np.testing.assert_allclose(
        attributions.sum(axis=-1) + base, model.decision_function(X[:20]), atol=1e-5
    )


@pytest.mark.parametrize("classes", [2, 3])
async def test_a_logistic_regression_is_explained_against_the_baseline(
    tmp_path: Path, explain: Explain, classes: int
) -> None:
    labels = Y if classes == 3 else (Y > 0).astype(np.int64)
    model = LogisticRegression(max_iter=500).fit(X, labels)
    runtime = saved(tmp_path, model)
    baseline = X[:10].mean(axis=0)
    found = await explain(runtime, "sklearn", X[:5], explain_baseline=baseline.tolist())
    attributions, base = found.outputs["attributions"], found.outputs["base_value"]
    assert found.parameters["explainer"] == "shap_linear"
    coef = model.coef_ if classes == 3 else model.coef_[:1]
    expected = (X[:5] - baseline)[:, None, :] * coef[None, :, :]
    np.testing.assert_allclose(attributions.reshape(expected.shape), expected, atol=1e-10)
    np.testing.assert_allclose(
        attributions.sum(axis=-1) + base, model.decision_function(X[:5]), atol=1e-10
    )


async def test_a_regressor_with_no_baseline_is_explained_against_zeros(
    tmp_path: Path, explain: Explain
) -> None:
    model = Ridge().fit(X, X[:, 0] * 2 - X[:, 1])
    found = await explain(saved(tmp_path, model), "sklearn", X[:4])
    np.testing.assert_allclose(found.outputs["attributions"], X[:4] * model.coef_, atol=1e-12)
    np.testing.assert_allclose(found.outputs["base_value"], model.intercept_, atol=1e-12)
    assert found.parameters["explained"] == "predict"


async def test_a_pipeline_takes_the_kernel_fallback(tmp_path: Path, explain: Explain) -> None:
    model = build_sklearn_classifier(tmp_path / "1" / "model.skops", X, Y)
    runtime = load_runtime("sklearn", tmp_path / "1" / "model.skops")
    found = await explain(runtime, "sklearn", X[:3], explain_baseline=X[:8].tolist())
    assert found.parameters == {
        "explainer": "kernel_shap", "explained": "predict_proba", "exact": True,
        "coalitions": 62, "complete": True,
    }  # fmt: skip
    attributions, base = found.outputs["attributions"], found.outputs["base_value"]
    assert attributions.shape == (3, 3, 6)
    np.testing.assert_allclose(
        attributions.sum(axis=-1) + base, model.predict_proba(X[:3]), atol=1e-6
    )
    reference = shap.KernelExplainer(model.predict_proba, X[:8])
    values = np.asarray(reference.shap_values(X[:3], nsamples=62, l1_reg=False, silent=True))
    np.testing.assert_allclose(attributions, values.transpose(0, 2, 1), atol=1e-6)
