"""The model manager: load, warm, serve, swap and unload model versions.

    ModelManager
    └── ModelVersion (one per loaded or failed version)
        ├── Runtime   the framework, called in worker threads
        └── Batcher   queue and batches in front of the runtime

A version takes traffic only once loaded *and* warmed. Reloading a version builds the new
runtime beside the old one, switches atomically, then drains the old one, so requests never
see a half-loaded model. A version that fails to load is kept with its reason and never gets
traffic; the other models keep serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

from inferd.batching import Batcher, BatchPolicy
from inferd.config import ModelConfig
from inferd.errors import InferdError, ModelLoadError, ModelNotFound, ModelNotReady
from inferd.monitoring import Metrics
from inferd.runtimes import Runtime, runtime_class
from inferd.serving.repository import RepositoryModel, VersionArtifact
from inferd.serving.stats import ModelStats
from inferd.types import Signature

logger = logging.getLogger(__name__)


class VersionState(StrEnum):
    """Life cycle of a model version in this process."""

    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(eq=False)
class ModelVersion:
    """One version of a model as this process holds it."""

    name: str
    version: int
    config: ModelConfig
    artifact: Path | None
    state: VersionState = VersionState.LOADING
    reason: str = ""
    runtime: Runtime | None = None
    batcher: Batcher | None = None
    signature: Signature | None = None
    memory_bytes: int = 0
    load_seconds: float = 0.0
    stats: ModelStats = field(default_factory=ModelStats)

    @property
    def label(self) -> str:
        return str(self.version)

    @property
    def device(self) -> str:
        return self.runtime.device if self.runtime is not None else self.config.device


class ModelManager:
    """Holds every model version of this process and resolves requests to one.

    Args:
        metrics: where load state, memory and batch metrics go.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._models: dict[str, dict[int, ModelVersion]] = {}
        self._default: dict[str, ModelVersion] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` this process knows, in any state, ascending.

        Raises:
            ModelNotFound: no such model.
        """
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name, known=self.names())
        return [versions[v] for v in sorted(versions)]

    def get(self, name: str, version: str | None) -> ModelVersion:
        """The ready version to serve a request (the highest ready one when none is named).

        Raises:
            ModelNotFound: unknown model or version.
            ModelNotReady: the version exists but cannot take requests.
        """
        if version is None:
            chosen = self._default.get(name)
            if chosen is not None:
                return chosen
            versions = self.versions(name)
            states = ", ".join(f"{v.version}: {v.state}" for v in versions) or "no versions"
            raise ModelNotReady(name, None, states)
        chosen = self.find(name, version)
        if chosen.state is not VersionState.READY:
            reason = f"{chosen.state}{': ' + chosen.reason if chosen.reason else ''}"
            raise ModelNotReady(name, version, reason)
        return chosen

    def find(self, name: str, version: str) -> ModelVersion:
        """A version in any state. Raises ModelNotFound."""
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name, known=self.names())
        try:
            return versions[int(version)]
        except (ValueError, KeyError):
            raise ModelNotFound(name, version) from None

    async def load(self, model: RepositoryModel) -> list[ModelVersion]:
        """Load (or reload) the versions a repository model selects; unload the others."""
        async with self._lock:
            versions = self._models.setdefault(model.name, {})
            wanted = {v.version for v in model.versions}
            loaded = [await self._load_version(model.config, v) for v in model.versions]
            for number in [n for n in versions if n not in wanted]:
                await self._unload_version(versions[number])
            return loaded

    async def unload(self, name: str) -> None:
        """Unload every version of a model after draining its requests.

        Raises:
            ModelNotFound: no such model.
        """
        async with self._lock:
            for version in self.versions(name):
                await self._unload_version(version)
            self._models.pop(name, None)

    async def close(self) -> None:
        """Drain and unload everything (graceful shutdown)."""
        for name in self.names():
            await self.unload(name)

    async def _load_version(self, config: ModelConfig, artifact: VersionArtifact) -> ModelVersion:
        name, number = config.name, artifact.version
        fresh = ModelVersion(name=name, version=number, config=config, artifact=artifact.artifact)
        versions = self._models[name]
        old = versions.get(number)
        if old is None:
            versions[number] = fresh  # visible as LOADING while it loads
        started = time.perf_counter()
        try:
            if artifact.artifact is None:
                raise ModelLoadError(name, number, artifact.problem(config.platform))
            runtime, signature, memory = await asyncio.to_thread(
                _build_runtime, config, artifact.artifact
            )
        except Exception as err:
            fresh.state = VersionState.UNAVAILABLE
            fresh.reason = (
                err.message if isinstance(err, InferdError) else f"{type(err).__name__}: {err}"
            )
            log = logger.error if isinstance(err, InferdError) else logger.exception
            log("model %s version %d: load failed: %s", name, number, fresh.reason)
            if old is None or old.state is not VersionState.READY:
                versions[number] = fresh
            return versions[number]
        fresh.runtime, fresh.signature, fresh.memory_bytes = runtime, signature, memory
        fresh.load_seconds = time.perf_counter() - started
        fresh.batcher = Batcher(
            runtime,
            BatchPolicy.from_config(config),
            model=name,
            version=fresh.label,
            observer=partial(self._on_batch, fresh),
        )
        fresh.state = VersionState.READY
        versions[number] = fresh  # the atomic switch: new requests see the new version
        self._refresh_default(name)
        self._metrics.set_loaded(name, fresh.label, True, memory)
        logger.info(
            "model %s version %d ready on %s in %.2f s", name, number, fresh.device,
            fresh.load_seconds,
        )  # fmt: skip
        if old is not None and old is not fresh and old.state is VersionState.READY:
            await self._retire(old)
        return fresh

    async def _unload_version(self, version: ModelVersion) -> None:
        versions = self._models.get(version.name, {})
        if versions.get(version.version) is version:
            del versions[version.version]
        self._refresh_default(version.name)
        await self._retire(version)
        self._metrics.set_loaded(version.name, version.label, False)

    async def _retire(self, version: ModelVersion) -> None:
        """Drain a version that no longer takes new requests, then free its memory."""
        version.state = VersionState.UNLOADING
        if version.batcher is not None:
            await version.batcher.close(drain=True)
        if version.runtime is not None:
            await asyncio.to_thread(version.runtime.unload)
        version.runtime = None
        version.batcher = None

    def _refresh_default(self, name: str) -> None:
        ready = [v for v in self._models.get(name, {}).values() if v.state is VersionState.READY]
        if ready:
            self._default[name] = max(ready, key=lambda v: v.version)
        else:
            self._default.pop(name, None)

    def _on_batch(
        self, version: ModelVersion, rows: int, requests: int, compute_s: float, ok: bool
    ) -> None:
        version.stats.record_batch(rows, compute_s)
        queued = version.batcher.queued if version.batcher is not None else 0
        self._metrics.observe_batch(version.name, version.label, rows, compute_s, queued)


def _build_runtime(config: ModelConfig, artifact: Path) -> tuple[Runtime, Signature, int]:
    """Load and warm a runtime; runs in a worker thread because frameworks block."""
    runtime = runtime_class(config.platform)(config, artifact, config.device)
    runtime.load()
    try:
        signature = runtime.signature()
        if config.warmup.enabled:
            limit = max(config.max_batch_size, 1)
            sizes = sorted({min(s, limit) for s in config.warmup.batch_sizes}) or [1]
            runtime.warmup(sizes, config.warmup.iterations)
    except Exception:
        runtime.unload()
        raise
    return runtime, signature, runtime.memory_bytes()
