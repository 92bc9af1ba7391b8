"""KernelSHAP for any model with one numeric feature matrix in and scores out.

The model-agnostic fallback (Lundberg and Lee, 2017): the value of a coalition of features
is the model's mean score when those features come from the explained row and the others
from a reference (background) row; Shapley values are the solution of a weighted linear
regression of coalition values on coalition masks, weighted by the Shapley kernel and
constrained so the attributions add up to ``f(x) - E[f(background)]`` exactly (the last
attribution is eliminated, so additivity holds by construction).

With ``2**features - 2`` coalitions or fewer within the budget every coalition is
evaluated and the answer is exact (for that background); otherwise coalitions are drawn
from the kernel's own distribution (a size, then a subset of that size, each with its
complement) by a seeded generator, so the same request gets the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb

import numpy as np

from inferd.explain.base import Explainer, Explanation

Predict = Callable[[np.ndarray], np.ndarray]  # [n, features] -> [n] or [n, outputs]
MAX_ENUMERATED_FEATURES = 30


class KernelExplainer(Explainer):
    """KernelSHAP with a fixed budget of coalitions per row.

    Args:
        predict: the model's explained score for a ``[n, features]`` matrix.
        explained: the name of that score (an output of the model).
        samples: coalitions evaluated per row (rounded down to an even number).
    """

    method = "kernel_shap"
    exact = False

    def __init__(self, predict: Predict, explained: str, samples: int) -> None:
        self._predict = predict
        self.explained = explained
        self.samples = max(2, samples - samples % 2)

    def coalitions(self, n_features: int) -> int:
        """How many coalitions one row costs (each evaluated on every reference row)."""
        if n_features <= 1:
            return 0
        if n_features <= MAX_ENUMERATED_FEATURES and 2**n_features - 2 <= self.samples:
            return int(2**n_features - 2)
        return self.samples

    def explain(
        self, x: np.ndarray, background: np.ndarray | None = None, seed: int = 0
    ) -> Explanation:
        """Attributions of each row of ``x`` against ``background`` (zeros by default)."""
        if background is None:
            background = np.zeros((1, x.shape[1]), dtype=x.dtype)
        base = _scores(self._predict(background)).mean(axis=0)
        fx = _scores(self._predict(x))
        rng = np.random.default_rng(seed)
        masks, weights = _masks(x.shape[1], self.coalitions(x.shape[1]), rng)
        phis = [
            _solve(self._coalition_values(row, background, masks), masks, weights, base, value)
            for row, value in zip(x, fx, strict=True)
        ]
        attributions = np.stack(phis)  # [rows, features, outputs]
        base_value = np.broadcast_to(base, fx.shape).copy()
        if fx.shape[1] == 1:
            return self._answer(attributions[:, :, 0], base_value[:, 0], masks)
        return self._answer(attributions.transpose(0, 2, 1), base_value, masks)

    def _answer(self, attributions: np.ndarray, base: np.ndarray, masks: np.ndarray) -> Explanation:
        n_features = attributions.shape[-1]
        complete = n_features <= 1 or len(masks) == 2**n_features - 2
        details: dict[str, object] = {"coalitions": len(masks), "complete": complete}
        return Explanation(attributions, base, self.explained, self.method, complete, details)

    def _coalition_values(
        self, row: np.ndarray, background: np.ndarray, masks: np.ndarray
    ) -> np.ndarray:
        if len(masks) == 0:
            return np.zeros((0, 1))
        # [coalitions, reference rows, features]: the row's values where the mask is set.
        mixed = np.where(masks[:, None, :], row[None, None, :], background[None, :, :])
        scores = _scores(self._predict(mixed.reshape(-1, row.shape[0])))
        means: np.ndarray = scores.reshape(len(masks), len(background), -1).mean(axis=1)
        return means


def _scores(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array.reshape(len(array), -1)


def _kernel_weight(n_features: int, size: int) -> float:
    return (n_features - 1) / (comb(n_features, size) * size * (n_features - size))


def _masks(n_features: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coalition masks ``[count, features]`` and their regression weights."""
    if count == 0:
        return np.zeros((0, n_features), dtype=bool), np.zeros(0)
    if count == 2**n_features - 2:  # every coalition, with its exact kernel weight
        codes = np.arange(1, 2**n_features - 1, dtype=np.int64)
        masks = (codes[:, None] >> np.arange(n_features)) & 1 == 1
        sizes = masks.sum(axis=1)
        return masks, np.array([_kernel_weight(n_features, int(s)) for s in sizes])
    # Sizes drawn with the kernel's total weight per size, (M - 1) / (s (M - s)); a subset
    # uniform within its size; so every drawn coalition weighs the same.
    sizes = np.arange(1, n_features)
    p = 1.0 / (sizes * (n_features - sizes))
    drawn = rng.choice(sizes, size=count // 2, p=p / p.sum())
    ranks = np.argsort(rng.random((count // 2, n_features)), axis=1).argsort(axis=1)
    half = ranks < drawn[:, None]
    return np.concatenate([half, ~half]), np.ones(count)


def _solve(values: np.ndarray, masks: np.ndarray, weights: np.ndarray, base: np.ndarray,
           fx: np.ndarray) -> np.ndarray:  # fmt: skip
    """Shapley values ``[features, outputs]`` of one row by constrained weighted least squares."""
    delta = fx - base
    n_features = masks.shape[1]
    if n_features == 1:
        one: np.ndarray = delta[None, :]
        return one
    z = masks.astype(np.float64)
    # Substituting phi_last = delta - sum(others) makes additivity exact.
    design = z[:, :-1] - z[:, -1:]
    target = values - base[None, :] - z[:, -1:] * delta[None, :]
    root = np.sqrt(weights)[:, None]
    beta = np.linalg.lstsq(design * root, target * root, rcond=None)[0]
    phi: np.ndarray = np.vstack([beta, delta[None, :] - beta.sum(axis=0, keepdims=True)])
    return phi
