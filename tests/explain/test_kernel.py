"""KernelSHAP (inferd.explain.kernel) against shap's KernelExplainer and exact values."""

from __future__ import annotations

import numpy as np
import shap

from inferd.explain.kernel import KernelExplainer

RNG = np.random.default_rng(7)
WEIGHTS = RNG.standard_normal((6, 3))


def network(x: np.ndarray) -> np.ndarray:
    """Three non-linear scores of six features: interactions, so sampling matters."""
    return np.tanh(x @ WEIGHTS) + x[:, :1] * x[:, 1:2]


def test_every_coalition_gives_shaps_kernel_values() -> None:
    background, x = RNG.standard_normal((4, 6)), RNG.standard_normal((3, 6))
    found = KernelExplainer(network, "y", samples=512).explain(x, background)
    reference = shap.KernelExplainer(network, background)
    values = np.asarray(reference.shap_values(x, nsamples=62, l1_reg=False, silent=True))
    assert found.attributions.shape == (3, 3, 6)  # [rows, outputs, features]
    assert found.base_value.shape == (3, 3)
    assert found.exact
    assert found.details == {"coalitions": 62, "complete": True}
    np.testing.assert_allclose(found.attributions, values.transpose(0, 2, 1), atol=1e-9)
    np.testing.assert_allclose(found.base_value[0], reference.expected_value, atol=1e-12)


def test_sampled_coalitions_add_up_and_repeat_with_the_seed() -> None:
    background, x = RNG.standard_normal((4, 6)), RNG.standard_normal((2, 6))
    explainer = KernelExplainer(network, "y", samples=20)  # fewer than the 62 coalitions
    first = explainer.explain(x, background, seed=3)
    again = explainer.explain(x, background, seed=3)
    other = explainer.explain(x, background, seed=4)
    assert not first.exact
    assert first.details["coalitions"] == 20
    np.testing.assert_array_equal(first.attributions, again.attributions)
    assert not np.array_equal(first.attributions, other.attributions)
    total = first.attributions.sum(axis=-1) + first.base_value
    np.testing.assert_allclose(total, network(x), atol=1e-9)
    exact = KernelExplainer(network, "y", samples=512).explain(x, background)
    # An approximation: near the exact values, not equal to them.
    assert 0 < np.abs(first.attributions - exact.attributions).max() < 1.0


def test_an_additive_model_is_explained_exactly_from_few_samples() -> None:
    weights = RNG.standard_normal(40)
    background, x = RNG.standard_normal((3, 40)), RNG.standard_normal((2, 40))
    # 100 independent coalition pairs for 40 features (a pair tells one equation).
    found = KernelExplainer(lambda v: v @ weights, "y", samples=200).explain(x, background)
    expected = (x - background.mean(axis=0)) * weights  # Shapley values of a linear model
    np.testing.assert_allclose(found.attributions, expected, atol=1e-8)
    np.testing.assert_allclose(found.base_value, (background @ weights).mean(), atol=1e-12)


def test_the_default_reference_is_one_row_of_zeros() -> None:
    found = KernelExplainer(lambda v: 2 * v[:, 0] + 1, "y", samples=8).explain(
        np.array([[3.0], [-1.0]])
    )
    np.testing.assert_allclose(found.attributions, [[6.0], [-2.0]])
    np.testing.assert_allclose(found.base_value, [1.0, 1.0])
    assert found.exact


def test_coalitions_per_row_are_bounded_by_the_budget() -> None:
    explainer = KernelExplainer(network, "y", samples=101)
    assert explainer.coalitions(1) == 0
    assert explainer.coalitions(6) == 62
    assert explainer.coalitions(7) == 100  # 126 coalitions exceed it: sampled, even count
    assert explainer.coalitions(256) == 100
