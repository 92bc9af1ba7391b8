"""Explanations: per-feature attributions of a model's score for each request row.

    Explainer (ABC)                  inferd.explain.base
    ├── XGBoostExplainer             inferd.explain.boosters  (pred_contribs, exact)
    ├── LightGBMExplainer            inferd.explain.boosters  (pred_contrib, exact)
    ├── TreeExplainer                inferd.explain.sklearn   (shap.TreeExplainer, exact)
    ├── LinearExplainer              inferd.explain.sklearn   (shap.LinearExplainer, exact)
    └── KernelExplainer              inferd.explain.kernel    (KernelSHAP, bounded budget)

:class:`Explanations` (inferd.explain.service) picks one per loaded version and answers
``POST /v2/models/{m}/explain`` and ``explain: true`` on an inference request; see
docs/explanations.md.
"""

from inferd.explain.base import Explainer, ExplainLimits, Explanation, NotExplainable
from inferd.explain.kernel import KernelExplainer
from inferd.explain.service import Explanations

__all__ = [
    "ExplainLimits",
    "Explainer",
    "Explanation",
    "Explanations",
    "KernelExplainer",
    "NotExplainable",
]
