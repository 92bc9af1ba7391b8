"""What every explainer shares: the answer's shape, the budget and the errors.

An explainer turns a ``[rows, features]`` matrix into an :class:`Explanation`: one
attribution per feature and a base value per row (and per explained output), such that
``attributions.sum(axis=-1) + base_value`` is the explained score of each row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from inferd.errors import ConfigError, InferdError


@dataclass(frozen=True, slots=True)
class Explanation:
    """Per-feature attributions for a batch of rows.

    Attributes:
        attributions: ``[rows, features]`` for one explained output, ``[rows, outputs,
            features]`` for several (one slice per class, in the model's class order).
        base_value: ``[rows]`` or ``[rows, outputs]``: the score with no feature known.
        explained: what the attributions add up to, e.g. ``margin`` or ``predict_proba``.
        method: the algorithm, e.g. ``xgboost_tree_shap`` or ``kernel_shap``.
        exact: True when the attributions are exact Shapley values of the explained score.
    """

    attributions: np.ndarray
    base_value: np.ndarray
    explained: str
    method: str
    exact: bool
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExplainLimits:
    """How much one explanation may cost.

    Attributes:
        max_rows: rows one exact (tree or linear) explanation may carry.
        max_kernel_rows: rows one KernelSHAP explanation may carry.
        kernel_samples: coalitions KernelSHAP evaluates per row (all of them when
            ``2**features - 2`` is no more).
        max_background: reference rows KernelSHAP averages over (a baseline sent with the
            request is cut to this many, the first ones).
        max_evaluations: model rows one KernelSHAP explanation may evaluate in all
            (rows x coalitions x reference rows); past it the request is refused.
        concurrency: explanations running at once in this process.
    """

    max_rows: int = 1000
    max_kernel_rows: int = 16
    kernel_samples: int = 512
    max_background: int = 32
    max_evaluations: int = 2_000_000
    concurrency: int = 1

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_kernel_rows", "kernel_samples", "max_background",
                     "max_evaluations", "concurrency"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError("ExplainLimits", name, f"expected an integer >= 1, got {value!r}")


class NotExplainable(InferdError):
    """The model (or the request) cannot be explained here; a 400 naming what and why."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, model: str, version: str, expected: str, got: str) -> None:
        super().__init__(f"explain {model} version {version}: expected {expected}, got {got}")


class Explainer(ABC):
    """Explains one loaded model version; built once per version and reused.

    ``explain`` is synchronous and may take a while: callers run it in a worker thread.
    """

    method = "explainer"
    exact = True  # exact explainers take ExplainLimits.max_rows rows, the others fewer

    @abstractmethod
    def explain(
        self, x: np.ndarray, background: np.ndarray | None = None, seed: int = 0
    ) -> Explanation:
        """Attributions for each row of ``x`` (``[rows, features]``).

        Args:
            x: the rows to explain.
            background: reference rows for explainers that need them (linear, kernel);
                None for one all-zeros row. Tree explainers use the trees' own cover.
            seed: for explainers that sample (kernel).
        """


def split_bias(
    contributions: np.ndarray, n_features: int, n_outputs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a booster's ``[rows, outputs * (features + 1)]`` contributions (bias last in
    each output's block) into attributions and base values, one output squeezed away."""
    rows = contributions.shape[0]
    blocks = contributions.reshape(rows, n_outputs, n_features + 1).astype(np.float64)
    attributions, base = blocks[:, :, :-1], blocks[:, :, -1]
    if n_outputs == 1:
        return attributions[:, 0, :], base[:, 0]
    return attributions, base
