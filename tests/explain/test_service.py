"""The service's budget (rows per method, model evaluations for KernelSHAP) and its
explainer per loaded runtime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures.explain import served
from fixtures.models import build_sklearn_classifier, classification_data, load_runtime

from inferd.errors import ConfigError, InvalidInput
from inferd.explain import ExplainLimits, Explanations
from inferd.types import InferenceRequest, InferenceResponse

Explain = Callable[..., Awaitable[InferenceResponse]]
X, Y = classification_data(rows=100)


async def test_exact_methods_take_more_rows_than_the_kernel(
    tmp_path: Path, explain: Explain
) -> None:
    build_sklearn_classifier(tmp_path / "1" / "model.skops", X, Y)
    runtime = load_runtime("sklearn", tmp_path / "1" / "model.skops")
    limits = ExplainLimits(max_rows=50, max_kernel_rows=2)
    with pytest.raises(InvalidInput, match="at most 2 rows per kernel_shap explanation, got 3"):
        await explain(runtime, "sklearn", X[:3], limits)
    with pytest.raises(InvalidInput, match=r"at most 100 model rows evaluated by KernelSHAP"):
        await explain(runtime, "sklearn", X[:2], ExplainLimits(max_evaluations=100))


async def test_answers_repeat_and_survive_a_hot_swap(tmp_path: Path) -> None:
    build_sklearn_classifier(tmp_path / "1" / "model.skops", X, Y)
    runtime = load_runtime("sklearn", tmp_path / "1" / "model.skops")
    version = served(runtime, "sklearn")
    service = Explanations()
    request = InferenceRequest("m", None, {"x": X[:1]}, parameters={"explain_seed": 1})
    first = await service.explain(request, version)
    again = await service.explain(request, version)
    np.testing.assert_array_equal(first.outputs["attributions"], again.outputs["attributions"])
    version.runtime = load_runtime("sklearn", tmp_path / "1" / "model.skops")  # a hot swap
    swapped = await service.explain(request, version)
    np.testing.assert_array_equal(first.outputs["attributions"], swapped.outputs["attributions"])


@pytest.mark.parametrize("field", ["max_rows", "kernel_samples", "concurrency"])
def test_limits_must_be_positive_integers(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}.*expected an integer >= 1, got 0"):
        ExplainLimits(**{field: 0})
