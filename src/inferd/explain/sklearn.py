"""scikit-learn trees and linear models, explained by ``shap`` (the ``explain`` extra).

* Trees and tree ensembles (decision trees, random forests, extra trees, gradient
  boosting, histogram gradient boosting): ``shap.TreeExplainer``, exact (path-dependent
  TreeSHAP, no background needed). It explains the trees' raw output: the log-odds
  (``decision_function``) for gradient-boosted classifiers, the class probabilities
  (``predict_proba``) for forests and single trees, ``predict`` for regressors.
* Linear models (``LogisticRegression``, ``Ridge``, ``LinearRegression``, ...):
  ``shap.LinearExplainer`` against the background (one all-zeros row by default), exact:
  ``coef * (x - mean(background))``; it explains ``decision_function`` (log-odds) for
  classifiers and ``predict`` for regressors.

Anything else (pipelines, SVMs, neighbours, multi-class gradient boosting, which shap's tree
explainer refuses) returns None from :func:`sklearn_explainer` and takes the kernel fallback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.explain.base import Explainer, Explanation

# Not IsolationForest: shap explains its path length, not the score it serves.
_TREES = (
    "DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier",
    "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
    "ExtraTreeClassifier", "ExtraTreeRegressor", "GradientBoostingClassifier",
    "GradientBoostingRegressor", "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
)  # fmt: skip


def sklearn_explainer(model: Any, shap: Any) -> Explainer | None:
    """The shap explainer for ``model``, or None when shap has none for it."""
    kind = type(model).__name__
    if kind in _TREES:
        try:
            tree = shap.TreeExplainer(model)
        except Exception:  # shap's InvalidModelError: e.g. multi-class gradient boosting
            return None
        return TreeExplainer(tree, _explained(model))
    if _is_linear(model):
        return LinearExplainer(model, shap, _explained(model))
    return None


def _is_linear(model: Any) -> bool:
    coef = getattr(model, "coef_", None)
    return (
        coef is not None
        and hasattr(model, "intercept_")
        and type(model).__module__.startswith("sklearn.linear_model")
    )


def _explained(model: Any) -> str:
    if hasattr(model, "decision_function"):
        return "decision_function"
    return "predict_proba" if hasattr(model, "predict_proba") else "predict"


class TreeExplainer(Explainer):
    """``shap.TreeExplainer`` over a fitted scikit-learn tree model (exact)."""

    method = "shap_tree"

    def __init__(self, tree: Any, explained: str) -> None:
        self._tree = tree
        self._explained = explained

    def explain(
        self, x: np.ndarray, background: np.ndarray | None = None, seed: int = 0
    ) -> Explanation:
        """SHAP values of the trees' raw output for each row of ``x``."""
        values = np.asarray(self._tree.shap_values(x, check_additivity=False), dtype=np.float64)
        return _shaped(values, self._tree.expected_value, self._explained, self.method)


class LinearExplainer(Explainer):
    """``shap.LinearExplainer`` (independent features) against a background (exact)."""

    method = "shap_linear"

    def __init__(self, model: Any, shap: Any, explained: str) -> None:
        self._model = model
        self._shap = shap
        self._explained = explained

    def explain(
        self, x: np.ndarray, background: np.ndarray | None = None, seed: int = 0
    ) -> Explanation:
        """SHAP values of the linear score of each row of ``x`` against ``background``."""
        if background is None:
            background = np.zeros((1, x.shape[1]))
        linear = self._shap.LinearExplainer(self._model, np.asarray(background, np.float64))
        values = np.asarray(linear.shap_values(x), dtype=np.float64)
        return _shaped(values, linear.expected_value, self._explained, self.method)


def _shaped(values: np.ndarray, expected: Any, explained: str, method: str) -> Explanation:
    """shap's ``[rows, features]`` or ``[rows, features, outputs]`` as an Explanation."""
    rows = values.shape[0]
    base = np.asarray(expected, dtype=np.float64).reshape(-1)
    if values.ndim == 3:  # one slice per class: [rows, classes, features]
        return Explanation(
            values.transpose(0, 2, 1), np.tile(base, (rows, 1)), explained, method, exact=True
        )
    return Explanation(values, np.full(rows, base[0]), explained, method, exact=True)
