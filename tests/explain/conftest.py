"""Explaining loaded runtimes through inferd.explain's service, as the routes do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from fixtures.explain import served

from inferd.explain import ExplainLimits, Explanations
from inferd.runtimes import Runtime
from inferd.types import InferenceRequest, InferenceResponse

Explain = Callable[..., Awaitable[InferenceResponse]]


@pytest.fixture
def explain() -> Explain:
    """``await explain(runtime, platform, x, limits=None, **parameters)``."""

    async def run(
        runtime: Runtime, platform: str, x: np.ndarray, limits: ExplainLimits | None = None,
        **parameters: Any,
    ) -> InferenceResponse:  # fmt: skip
        name = runtime.signature().inputs[0].name
        request = InferenceRequest("m", None, {name: x}, parameters=parameters)
        return await Explanations(limits).explain(request, served(runtime, platform))

    return run
