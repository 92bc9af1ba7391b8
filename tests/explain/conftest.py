"""Explaining loaded runtimes through inferd.explain's service, as the routes do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from inferd.config import parse_model_config
from inferd.explain import ExplainLimits, Explanations
from inferd.runtimes import Runtime
from inferd.serving.manager import ModelVersion, VersionState
from inferd.types import InferenceRequest, InferenceResponse

Explain = Callable[..., Awaitable[InferenceResponse]]


def served(runtime: Runtime, platform: str) -> ModelVersion:
    """A ready version 1 of model ``m`` around a loaded runtime."""
    config = parse_model_config({"platform": platform}, "test", "m")
    return ModelVersion(
        "m", 1, config, None, state=VersionState.READY, runtime=runtime,
        signature=runtime.signature(),
    )  # fmt: skip


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
