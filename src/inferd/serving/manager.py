"""The model manager: load, warm, serve, swap, evict and unload model versions.

    ModelManager
    └── ModelVersion (one per loaded or failed version)
        ├── Runtime   the framework, called in worker threads
        └── Batcher   queue and batches in front of the runtime

A version takes traffic only once loaded *and* warmed. Reloading a version builds the new
runtime beside the old one, switches atomically, then drains the old one, so requests never
see a half-loaded model. A version that fails to load is kept with its reason and never gets
traffic; the other models keep serving.

Routing without a version goes to the production version when it is ready, else to the
highest ready version. With a memory budget, loading evicts the least recently used
unpinned versions until the new one fits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

from inferd.batching import Batcher, BatchPolicy
from inferd.config import ModelConfig
from inferd.errors import (
    ConfigError,
    InferdError,
    InsufficientMemory,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
)
from inferd.monitoring import Metrics
from inferd.preprocess import Preprocessor, compile_preprocessing
from inferd.runtimes import Runtime
from inferd.serving.collector import Collector
from inferd.serving.runtime_build import build_copies, build_runtime, warmup_sizes
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
    digest: str = ""
    state: VersionState = VersionState.LOADING
    reason: str = ""
    runtime: Runtime | None = None
    batcher: Batcher | None = None
    signature: Signature | None = None
    preprocessor: Preprocessor | None = None  # model.yaml's preprocessing, compiled at load
    memory_bytes: int = 0  # host and device together
    device_bytes: int = 0
    load_seconds: float = 0.0
    pinned: bool = False
    on_demand: bool = False
    retryable: bool = False  # failed for lack of memory, not because of the version
    instances_changed: str = ""  # the last adaptive instance change, for model metadata
    last_used: float = field(default_factory=time.monotonic)
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
        memory_budget: bytes all loaded versions may hold together; None for no limit.
        device_budget: bytes the versions on one GPU may hold there; None for no limit.
        code_roots: folders artifacts that run code may load from (inferd.runtimes.trust);
            None for no such check.
        collector: the process's garbage-collector tuning; told after each unload (not at
            shutdown) so the unloaded runtime's frozen objects can be collected.
    """

    def __init__(
        self, metrics: Metrics, *, memory_budget: int | None = None,
        device_budget: int | None = None, code_roots: Sequence[Path] | None = None,
        collector: Collector | None = None,
    ) -> None:  # fmt: skip
        self._metrics = metrics
        # Frozen start-up objects go back to the collector once a runtime is unloaded.
        self.collector = collector
        self._closing = False
        # Artifacts that run code (python models, trusted pickles) load only from these.
        self.code_roots = code_roots
        self.memory_budget = memory_budget
        self.device_budget = device_budget
        self._models: dict[str, dict[int, ModelVersion]] = {}
        self._default: dict[str, ModelVersion] = {}
        self._production: dict[str, int] = {}
        self._lock = asyncio.Lock()
        # Versions pushed out by the budget: they come back on demand, not by reconcile.
        self.evicted: set[tuple[str, int]] = set()

    # -- lookups (event loop, hot path) --------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` this process holds, in any state, ascending.

        Raises:
            ModelNotFound: no such model.
        """
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name, known=self.names())
        return [versions[v] for v in sorted(versions)]

    def get(self, name: str, version: str | None) -> ModelVersion:
        """The ready version to serve a request.

        Raises:
            ModelNotFound: unknown model or version.
            ModelNotReady: the version exists but cannot take requests.
        """
        if version is None:
            chosen = self._default.get(name)
            if chosen is None:
                versions = self.versions(name)
                states = ", ".join(f"{v.version}: {v.state}" for v in versions) or "no versions"
                raise ModelNotReady(name, None, states)
        else:
            try:  # find() inlined: experiments and rollouts name the version of most requests
                chosen = self._models[name][int(version)]
            except (KeyError, ValueError):
                chosen = self.find(name, version)  # raises ModelNotFound, with what is known
            if chosen.state is not VersionState.READY:
                reason = f"{chosen.state}{': ' + chosen.reason if chosen.reason else ''}"
                raise ModelNotReady(name, version, reason)
        chosen.last_used = time.monotonic()
        return chosen

    def find(self, name: str, version: str | int) -> ModelVersion:
        """A version in any state. Raises ModelNotFound."""
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name, known=self.names())
        try:
            return versions[int(version)]
        except (ValueError, KeyError):
            raise ModelNotFound(name, str(version)) from None

    def loaded_bytes(self, exclude: ModelVersion | None = None) -> int:
        """Memory held by every ready or loading version (but ``exclude``)."""
        return sum(
            v.memory_bytes
            for versions in self._models.values()
            for v in versions.values()
            if v.state in (VersionState.READY, VersionState.LOADING) and v is not exclude
        )

    def set_production(self, name: str, version: int | None) -> None:
        """Route version-less requests for ``name`` to ``version`` once it is ready."""
        if version is None:
            self._production.pop(name, None)
        else:
            self._production[name] = version
        self._refresh_default(name)

    # -- changes (serialised) ----------------------------------------------------------------

    async def load_version(
        self, config: ModelConfig, number: int, artifact: Path | None, *, digest: str = "",
        estimate: int = 0, pinned: bool = False, on_demand: bool = False,
    ) -> ModelVersion:  # fmt: skip
        """Load and warm a version, then switch traffic to it atomically.

        A version already ready with the same artifact digest and config is kept as it is.
        On failure the version is recorded UNAVAILABLE with the reason; a ready copy that
        was serving keeps serving.
        """
        async with self._lock:
            current = self._models.get(config.name, {}).get(number)
            if (
                current is not None
                and current.state is VersionState.READY
                and current.digest == digest
                and current.config == config
            ):
                current.pinned = pinned
                current.on_demand = current.on_demand and on_demand
                return current
            return await self._load(config, number, artifact, digest, estimate, pinned, on_demand)

    async def unload_version(self, name: str, number: int) -> None:
        """Stop routing to a version, drain its requests, free it and drop its record."""
        async with self._lock:
            version = self._models.get(name, {}).get(number)
            if version is not None:
                await self._unload(version)
                self._drop(name, number)

    def _drop(self, name: str, number: int) -> None:
        if self._models.get(name, {}).pop(number, None) is not None:
            self._metrics.lifecycle.set_state(name, str(number), None)
        if not self._models.get(name):
            self._models.pop(name, None)
            self._default.pop(name, None)

    async def unload(self, name: str) -> None:
        """Drain and unload every version of a model. Raises ModelNotFound."""
        for version in self.versions(name):
            await self.unload_version(name, version.version)

    async def close(self) -> None:
        """Drain and unload everything (graceful shutdown)."""
        self._closing = True  # the process ends: no collection after each unload
        for name in self.names():
            await self.unload(name)

    async def _load(
        self, config: ModelConfig, number: int, artifact: Path | None, digest: str,
        estimate: int, pinned: bool, on_demand: bool,
    ) -> ModelVersion:  # fmt: skip
        name = config.name
        fresh = ModelVersion(name=name, version=number, config=config, artifact=artifact,
                             digest=digest, pinned=pinned, on_demand=on_demand)  # fmt: skip
        versions = self._models.setdefault(name, {})
        old = versions.get(number)
        if old is None or old.state is not VersionState.READY:
            versions[number] = fresh  # visible as LOADING while it loads
            self._metrics.lifecycle.set_state(name, fresh.label, fresh.state)
        started = time.perf_counter()
        try:
            if artifact is None:
                raise ModelLoadError(name, number, "no artifact")
            await self._make_room(estimate, old, name, number)
            fresh.memory_bytes = estimate
            runtime, signature, memory = await asyncio.to_thread(
                build_runtime, config, artifact, self.code_roots
            )
        except Exception as err:
            return self._failed(fresh, old, err)
        fresh.runtime, fresh.signature = runtime, signature
        try:  # a block that does not fit the model's signature fails the load, named
            fresh.preprocessor = _preprocessor(config, signature, fresh)
        except ConfigError as err:
            await asyncio.to_thread(runtime.unload)
            return self._failed(fresh, old, err)
        fresh.memory_bytes, fresh.device_bytes = memory.total, memory.device_bytes
        fresh.load_seconds = time.perf_counter() - started
        try:
            # The estimate before loading can be low: make room for what was measured.
            await self._make_room(0, old, name, number, loading=fresh)
        except InsufficientMemory as err:
            await asyncio.to_thread(runtime.unload)
            return self._failed(fresh, old, err)
        policy = BatchPolicy.from_config(config)
        try:  # a runtime that is not thread-safe gets a loaded copy per instance
            copies = await self.build_copies(fresh, runtime, policy.instances - 1)
        except Exception as err:
            await asyncio.to_thread(runtime.unload)
            return self._failed(fresh, old, err)
        observer = partial(self._on_batch, fresh)
        fresh.batcher = Batcher(runtime, policy, model=name, version=fresh.label,
                                observer=observer, copies=copies)  # fmt: skip
        if config.warmup.enabled:
            # Warm every thread that will serve, not only the loading one, so the first
            # request after ready is as fast as the others.
            sizes, iterations = warmup_sizes(config), config.warmup.iterations
            try:
                await fresh.batcher.run_on_each_thread(lambda r: r.warmup(sizes, iterations))
            except Exception as err:  # a failed warm-up fails this load only
                await fresh.batcher.close(drain=False)
                for loaded in (runtime, *copies):
                    await asyncio.to_thread(loaded.unload)
                return self._failed(fresh, old, err)
        fresh.state = VersionState.READY
        self.evicted.discard((name, number))
        versions[number] = fresh  # the atomic switch: new requests see the new version
        swapped = self._refresh_default(name)
        self._metrics.set_loaded(name, fresh.label, True, fresh.memory_bytes)
        self._metrics.instances.set(name, fresh.label, policy.instances)
        self._metrics.lifecycle.set_state(name, fresh.label, fresh.state)
        self._metrics.lifecycle.loaded(name, fresh.label, time.perf_counter() - started)
        self._metrics.prepare(name, fresh.label, ("http", "grpc", "predict"))
        logger.info("model %s version %d ready on %s in %.2f s (%d bytes)", name, number,
                    fresh.device, fresh.load_seconds, memory.total)  # fmt: skip
        if old is not None and old is not fresh and old.state is VersionState.READY:
            await self._retire(old, "replaced")
        if swapped:
            self._metrics.lifecycle.swap_took(name, time.perf_counter() - started)
        return fresh

    def _failed(
        self, fresh: ModelVersion, old: ModelVersion | None, err: Exception
    ) -> ModelVersion:
        fresh.state = VersionState.UNAVAILABLE
        fresh.memory_bytes = 0
        fresh.retryable = isinstance(err, InsufficientMemory)
        fresh.reason = (
            err.message if isinstance(err, InferdError) else f"{type(err).__name__}: {err}"
        )
        log = logger.error if isinstance(err, InferdError) else logger.exception
        log("model %s version %d: load failed: %s", fresh.name, fresh.version, fresh.reason)
        self._metrics.lifecycle.load_failed(fresh.name, fresh.label)
        versions = self._models[fresh.name]
        if old is None or old.state is not VersionState.READY:
            versions[fresh.version] = fresh
            self._metrics.lifecycle.set_state(fresh.name, fresh.label, fresh.state)
            return fresh
        return fresh  # the ready copy keeps serving; the caller sees the failure

    async def _make_room(
        self, needed: int, keep: ModelVersion | None, name: str, number: int,
        loading: ModelVersion | None = None,
    ) -> None:  # fmt: skip
        """Evict least recently used unpinned versions until the new one fits the host budget
        and, once it is loaded on a GPU, that device's budget.

        ``loading`` is a version loaded but not yet switched in: its memory counts too.
        """
        if self.memory_budget is not None:
            total = needed + (loading.memory_bytes if loading is not None else 0)
            budget = self.memory_budget

            def host_used() -> int:
                return self.loaded_bytes(exclude=loading)

            await self._evict_until(lambda: host_used() + total <= budget, keep, None)
            if host_used() + total > budget:
                raise InsufficientMemory(
                    name, number, "the memory budget", total, budget - host_used()
                )
        device = loading.device if loading is not None else "cpu"
        if loading is None or self.device_budget is None or not device.startswith("cuda"):
            return
        device_budget, wanted = self.device_budget, loading.device_bytes

        def device_used() -> int:
            return self.device_bytes(device, exclude=loading)

        await self._evict_until(lambda: device_used() + wanted <= device_budget, keep, device)
        if device_used() + wanted > device_budget:
            raise InsufficientMemory(name, number, device, wanted, device_budget - device_used())

    async def _evict_until(
        self, fits: Callable[[], bool], keep: ModelVersion | None, device: str | None
    ) -> None:
        """Unload least recently used unpinned ready versions (on ``device`` if given)."""
        if fits():
            return
        candidates = sorted(
            (v for vs in self._models.values() for v in vs.values()
             if v.state is VersionState.READY and not v.pinned and v is not keep
             and (device is None or v.device == device)),
            key=lambda v: v.last_used,
        )  # fmt: skip
        for victim in candidates:
            if fits():
                break
            logger.info("evicting model %s version %d (least recently used) to free %d bytes",
                        victim.name, victim.version, victim.memory_bytes)  # fmt: skip
            await self._unload(victim, "evicted")
            self._drop(victim.name, victim.version)
            self.evicted.add((victim.name, victim.version))

    def device_bytes(self, device: str, exclude: ModelVersion | None = None) -> int:
        """Device memory held by the ready or loading versions on ``device``."""
        return sum(
            v.device_bytes
            for versions in self._models.values()
            for v in versions.values()
            if v.device == device and v is not exclude
            and v.state in (VersionState.READY, VersionState.LOADING)
        )  # fmt: skip

    async def _unload(self, version: ModelVersion, reason: str = "requested") -> None:
        versions = self._models.get(version.name, {})
        if versions.get(version.version) is version and version.state is VersionState.READY:
            version.state = VersionState.UNLOADING
            self._metrics.lifecycle.set_state(version.name, version.label, version.state)
        self._refresh_default(version.name)
        await self._retire(version, reason)
        self._metrics.set_loaded(version.name, version.label, False)
        if versions.get(version.version) is version:
            self._metrics.lifecycle.set_state(version.name, version.label, version.state)

    async def _retire(self, version: ModelVersion, reason: str) -> None:
        """Drain a version that no longer takes new requests, then free its memory."""
        started = time.perf_counter()
        loaded = version.runtime is not None
        if version.state is VersionState.READY:
            version.state = VersionState.UNLOADING
        copies: list[Runtime] = []
        if version.batcher is not None:
            await version.batcher.close(drain=True)
            copies = version.batcher.copies()
            self._metrics.instances.set(version.name, version.label, 0)
        for copy in copies:
            await asyncio.to_thread(copy.unload)
        if version.runtime is not None:
            await asyncio.to_thread(version.runtime.unload)
        version.runtime = None
        version.batcher = None
        if version.state is VersionState.UNLOADING:
            version.state = VersionState.UNAVAILABLE
            version.reason = version.reason or "unloaded"
        version.memory_bytes = 0
        if loaded:
            elapsed = time.perf_counter() - started
            self._metrics.lifecycle.unloaded(version.name, version.label, reason, elapsed)
            if self.collector is not None and not self._closing:
                self.collector.released()

    def _refresh_default(self, name: str) -> bool:
        """Pick the version answering requests that name none; True when that was a swap
        (from one ready copy to another), which is counted."""
        before = self._default.get(name)
        versions = self._models.get(name, {})
        preferred = versions.get(self._production.get(name, -1))
        ready = [v for v in versions.values() if v.state is VersionState.READY]
        if preferred is not None and preferred.state is VersionState.READY:
            self._default[name] = preferred
        elif ready:
            self._default[name] = max(ready, key=lambda v: v.version)
        else:
            self._default.pop(name, None)
        after = self._default.get(name)
        swapped = before is not None and after is not None and after is not before
        if swapped:
            self._metrics.lifecycle.swapped(name)
        return swapped

    async def build_copies(
        self, version: ModelVersion, runtime: Runtime, count: int
    ) -> list[Runtime]:
        """``count`` more loaded copies of ``version`` when ``runtime`` is not thread-safe
        (none otherwise), their memory added to the version's.

        Raises:
            InsufficientMemory: the copies would not fit the memory budget (nothing evicted
                for them: they are extra capacity, not the version itself).
        """
        if runtime.thread_safe or count <= 0 or version.artifact is None:
            return []
        each = runtime.memory_usage().total
        if self.memory_budget is not None:
            free = self.memory_budget - self.loaded_bytes()
            if each * count > free:
                raise InsufficientMemory(
                    version.name, version.version, "the memory budget", each * count, free
                )
        copies = await build_copies(version.config, version.artifact, self.code_roots, count)
        version.memory_bytes += each * count
        return copies

    def _on_batch(
        self, version: ModelVersion, rows: int, requests: int, compute_s: float, ok: bool
    ) -> None:
        version.stats.record_batch(rows, compute_s)
        queued = version.batcher.queued if version.batcher is not None else 0
        self._metrics.observe_batch(version.name, version.label, rows, compute_s, queued)


def _preprocessor(
    config: ModelConfig, signature: Signature, version: ModelVersion
) -> Preprocessor | None:
    if config.preprocessing is None:
        return None
    source = f"model '{version.name}' version {version.version}"
    return compile_preprocessing(config.preprocessing, signature, source)
