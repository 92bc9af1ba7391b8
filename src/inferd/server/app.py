"""Wiring: settings -> metrics -> model manager -> data plane -> ASGI app.

``create_app`` is the factory uvicorn calls in every worker process; it reads its settings
from the environment, which the CLI filled in before starting the workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from inferd.monitoring.metrics import Metrics, mark_worker_dead
from inferd.server.http import HttpApp
from inferd.serving.dataplane import DataPlane
from inferd.serving.manager import ModelManager
from inferd.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def repository_root(settings: Settings) -> Path:
    """The model repository to serve: the configured one or the built-in examples."""
    if settings.model_repository is not None:
        return settings.model_repository.expanduser()
    from inferd.serving.examples import ensure_examples  # needs onnx: import only when used

    return ensure_examples(settings.home / "examples")


def build_app(settings: Settings, metrics: Metrics | None = None) -> HttpApp:
    """Build the HTTP app for one process; models load in the background after start-up.

    Args:
        settings: the server settings.
        metrics: a metrics object to use (tests pass their own); a new one by default.
    """
    metrics = metrics or Metrics()
    dataplane = DataPlane(ModelManager(metrics), metrics, repository_root(settings))
    tasks: set[asyncio.Task[None]] = set()

    async def load() -> None:
        failures = await dataplane.start()
        for what, reason in failures.items():
            logger.error("not serving %s: %s", what, reason)
        logger.info("serving models: %s", ", ".join(dataplane.manager.names()) or "none")

    async def startup() -> None:
        # Load in the background so liveness answers at once and readiness flips when done.
        task = asyncio.create_task(load())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def shutdown() -> None:
        for task in list(tasks):
            task.cancel()
        await dataplane.stop()
        mark_worker_dead(os.getpid())

    return HttpApp(
        dataplane,
        max_body_bytes=settings.max_body_bytes,
        on_startup=startup,
        on_shutdown=shutdown,
    )


def create_app() -> HttpApp:
    """Uvicorn factory: settings from the ``INFERD_*`` environment."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return build_app(settings)
