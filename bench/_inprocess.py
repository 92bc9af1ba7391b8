"""The in-process load loop the request-path cost benchmarks share (drift, prediction log,
metrics): ``mlp`` loaded in a fresh :class:`ModelManager`, and callers that send it requests
back to back through :meth:`DataPlane.infer`, without HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from inferd.config import load_model_config
from inferd.monitoring.metrics import Metrics
from inferd.serving.dataplane import DataPlane
from inferd.serving.manager import ModelManager
from inferd.types import InferenceRequest


async def mlp_plane(repo: Path, metrics: Metrics) -> DataPlane:
    """A data plane (not started) over the example repository's ``mlp`` version 1."""
    manager = ModelManager(metrics)
    config = load_model_config(repo / "mlp" / "model.yaml", "mlp")
    await manager.load_version(config, 1, repo / "mlp" / "1" / "model.onnx")
    return DataPlane(manager, metrics)


async def drive(plane: DataPlane, concurrency: int, seconds: float) -> int:
    """``concurrency`` callers sending one-row ``mlp`` requests for ``seconds``; how many
    were answered."""
    x = np.random.default_rng(0).random((1, 256), dtype=np.float32)
    stop = time.perf_counter() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            request = InferenceRequest(model_name="mlp", model_version=None, inputs={"x": x})
            await plane.infer(request, "http")
            done += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done
