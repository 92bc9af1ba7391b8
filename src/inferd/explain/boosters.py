"""XGBoost and LightGBM explain themselves: exact TreeSHAP inside the booster.

Both boosters compute SHAP values of the raw score (the margin: log-odds for binary
classifiers, one margin per class for multi-class ones) with their own ``pred_contribs`` /
``pred_contrib``; the bias (the expected margin) comes last in each class's block, which
:func:`split_bias` turns into the base value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.explain.base import Explainer, Explanation, split_bias


class XGBoostExplainer(Explainer):
    """TreeSHAP of an ``xgboost.Booster`` (``pred_contribs=True``), exact."""

    method = "xgboost_tree_shap"

    def __init__(self, booster: Any, xgb: Any) -> None:
        self._booster = booster
        self._xgb = xgb

    def explain(
        self, x: np.ndarray, background: np.ndarray | None = None, seed: int = 0
    ) -> Explanation:
        """SHAP values of the margin of each row of ``x``."""
        matrix = self._xgb.DMatrix(np.ascontiguousarray(x, dtype=np.float32))
        raw = np.asarray(self._booster.predict(matrix, pred_contribs=True))
        n_features = x.shape[1]
        # [rows, features + 1] for one margin, [rows, classes, features + 1] for several.
        n_outputs = raw.shape[1] if raw.ndim == 3 else 1
        attributions, base = split_bias(raw.reshape(x.shape[0], -1), n_features, n_outputs)
        return Explanation(attributions, base, "margin", self.method, exact=True)


class LightGBMExplainer(Explainer):
    """TreeSHAP of a ``lightgbm.Booster`` (``pred_contrib=True``), exact."""

    method = "lightgbm_tree_shap"

    def __init__(self, booster: Any, predict_args: dict[str, Any] | None = None) -> None:
        self._booster = booster
        self._predict_args = dict(predict_args or {})

    def explain(
        self, x: np.ndarray, background: np.ndarray | None = None, seed: int = 0
    ) -> Explanation:
        """SHAP values of the raw score of each row of ``x``."""
        raw = np.asarray(
            self._booster.predict(
                np.ascontiguousarray(x, dtype=np.float64), pred_contrib=True,
                **self._predict_args,
            )
        )  # fmt: skip
        n_outputs = int(self._booster.num_model_per_iteration())
        attributions, base = split_bias(raw, x.shape[1], n_outputs)
        return Explanation(attributions, base, "margin", self.method, exact=True)
