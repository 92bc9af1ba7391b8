"""Model control: converge what this process serves to the registry's desired state.

Every replica runs one ``ModelControl``. It polls the registry revision (a cheap single-row
read) and reconciles when it moves, so all replicas converge within a poll interval of any
change. Per model, the desired versions are the production version and the staging
versions; a model with nothing in production serves what its ``version_policy`` selects
among versions that have not failed or been archived. Other registered versions load on the
first request that names them. Routing is then a pure function of that state.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from inferd.config import ModelConfig, parse_model_config
from inferd.errors import (
    ConfigError,
    InferdError,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    QueueFull,
    RegistryUnavailable,
)
from inferd.preprocess.versions import version_config
from inferd.registry import ArtifactStore, ModelRecord, Registry, Stage, Status, VersionRecord
from inferd.registry.outage import OutageLog
from inferd.serving.importer import RepositoryImporter
from inferd.serving.manager import ModelManager, ModelVersion, VersionState

logger = logging.getLogger(__name__)

MAX_LOAD_WAITERS = 1024


def desired_versions(config: ModelConfig, versions: list[VersionRecord]) -> set[int]:
    """The version numbers a replica keeps loaded for one model."""
    live = [v for v in versions if v.stage is not Stage.ARCHIVED]
    wanted = {v.version for v in live if v.stage in (Stage.PRODUCTION, Stage.STAGING)}
    if any(v.stage is Stage.PRODUCTION for v in live):
        return wanted
    candidates = [v.version for v in live if v.status is not Status.FAILED]
    return wanted | set(config.version_policy.select(candidates))


class ModelControl:
    """Reconciler, repository importer and on-demand loader of one server process.

    Args:
        registry: the registry (source of truth).
        artifacts: fetches and verifies artifacts.
        manager: the model manager to drive.
        importer: imports and watches a repository folder, if one is served.
        poll_s: how often to poll the registry revision and the repository folder.
    """

    def __init__(
        self, registry: Registry, artifacts: ArtifactStore, manager: ModelManager,
        importer: RepositoryImporter | None = None, poll_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.artifacts = artifacts
        self.manager = manager
        self.importer = importer
        self.poll_s = poll_s
        self.held_unloaded: set[str] = set()
        self._models: dict[str, ModelRecord] = {}
        self._versions: dict[str, list[VersionRecord]] = {}
        self._revision = -1
        self._lock = asyncio.Lock()
        self._loading: dict[tuple[str, int], asyncio.Task[ModelVersion]] = {}
        self._waiters: dict[tuple[str, int], int] = {}
        self._outage = OutageLog(logger, "models not reconciled", logging.ERROR)
        # "model/version" -> why its artifact no longer verifies while a loaded copy serves.
        self._stale: dict[str, str] = {}

    async def start(self) -> dict[str, str]:
        """Import the repository folder, then load the desired state; returns problems."""
        await asyncio.to_thread(self.registry.migrate)
        problems: dict[str, str] = {}
        if self.importer is not None:
            problems.update(await asyncio.to_thread(self.importer.import_all))
        problems.update(await self.reconcile())
        return problems

    async def run(self) -> None:
        """Poll the repository folder and the registry revision until cancelled."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                if self.importer is not None:
                    await asyncio.to_thread(self.importer.scan_changes)
                revision = await asyncio.to_thread(self.registry.revision)
                if revision != self._revision:
                    await self.reconcile()
                self._outage.ok()
            except RegistryUnavailable as err:
                self._outage.failed(err.message)
            except Exception:
                logger.exception("reconcile failed; retrying in %.1f s", self.poll_s)

    async def reconcile(self, only: str | None = None) -> dict[str, str]:
        """Load what should be loaded and unload what should not; returns problems."""
        async with self._lock:
            revision = await asyncio.to_thread(self.registry.revision)
            self._models, versions = await asyncio.to_thread(self.registry.snapshot)
            self._versions = {}
            for record in versions:
                self._versions.setdefault(record.model, []).append(record)
            self._revision = revision
            problems: dict[str, str] = {}
            for name in sorted(set(self._models) | set(self.manager.names())):
                if only is None or name == only:
                    problems.update(await self._reconcile_model(name))
            return problems

    async def _reconcile_model(self, name: str) -> dict[str, str]:
        model = self._models.get(name)
        records = {v.version: v for v in self._versions.get(name, [])}
        if model is None or name in self.held_unloaded:
            if name in self.manager.names():
                await self.manager.unload(name)
            return {}
        try:
            config = self._config(model)
        except ConfigError as err:
            return {name: err.message}
        problems: dict[str, str] = {}
        for _ in range(3):  # a failed latest version makes the policy pick the one before
            wanted = desired_versions(config, list(records.values()))
            failed = False
            for number in sorted(wanted):
                if (name, number) in self.manager.evicted:
                    continue  # pushed out by the memory budget: it loads on demand
                loaded = await self._ensure(config, records[number], on_demand=False)
                if f"{name}/{number}" in self._stale:
                    problems[f"{name}/{number}"] = self._stale[f"{name}/{number}"]
                elif loaded.retryable:
                    problems[f"{name}/{number}"] = loaded.reason
                elif loaded.state is not VersionState.READY:
                    problems[f"{name}/{number}"] = loaded.reason
                    records[number] = _with_status(records[number], Status.FAILED)
                    failed = True
            if not failed:
                break
        production = next((n for n, r in records.items() if r.stage is Stage.PRODUCTION), None)
        self.manager.set_production(name, production)
        ready = {v.version for v in self._held(name) if v.state is VersionState.READY}
        if not wanted & ready:
            # Nothing desired could load here: keep serving whatever still can.
            wanted = wanted | ready
        await self._drop_unwanted(name, records, wanted)
        return problems

    def _held(self, name: str) -> list[ModelVersion]:
        return self.manager.versions(name) if name in self.manager.names() else []

    async def preload(self, name: str, number: int) -> ModelVersion:
        """Load and warm a registered version before traffic moves to it (hot swap).

        Raises:
            ModelLoadError: it failed; the registry records the failure and reason.
        """
        async with self._lock:
            record = await asyncio.to_thread(self.registry.get_version, name, number)
            model = await asyncio.to_thread(self.registry.get_model, name)
            loaded = await self._ensure(self._config(model), record, on_demand=True)
        if loaded.state is not VersionState.READY:
            raise ModelLoadError(name, number, loaded.reason)
        return loaded

    async def _drop_unwanted(
        self, name: str, records: dict[int, VersionRecord], wanted: set[int]
    ) -> None:
        for version in self._held(name):
            record = records.get(version.version)
            keep = version.version in wanted or (
                version.on_demand and record is not None and record.stage is not Stage.ARCHIVED
            )
            if record is not None and record.status is Status.FAILED and not keep:
                continue  # keep the failed record visible with its reason
            if not keep:
                await self.manager.unload_version(name, version.version)

    async def _ensure(
        self, config: ModelConfig, record: VersionRecord, *, on_demand: bool
    ) -> ModelVersion:
        source = f"registry model '{record.model}' version {record.version}"
        config = version_config(config, record.preprocessing, source)  # its own block
        stale = self._stale.pop(f"{record.model}/{record.version}", None)
        try:
            path = await asyncio.to_thread(self.artifacts.fetch, record.artifact_uri, record.digest)
        except InferdError as err:
            held = self._ready_copy(record)
            if held is not None:
                return self._keep_serving(held, err.message, stale)
            path = None
            reason = err.message
        loaded = await self.manager.load_version(
            config, record.version, path, digest=record.digest, pinned=record.pinned,
            estimate=record.size_bytes, on_demand=on_demand,
        )  # fmt: skip
        if path is None:
            loaded.state, loaded.reason = VersionState.UNAVAILABLE, reason
        if loaded.retryable:
            return loaded  # no memory now: not the version's fault, nothing to record
        status = Status.READY if loaded.state is VersionState.READY else Status.FAILED
        if record.status is not status or (status is Status.FAILED):
            await self._report(record, status, loaded.reason)
        return loaded

    def _ready_copy(self, record: VersionRecord) -> ModelVersion | None:
        """The ready copy of a version, loaded from its registered digest, held here."""
        for version in self._held(record.model):
            if (version.version, version.digest) == (record.version, record.digest) and (
                version.state is VersionState.READY
            ):
                return version
        return None

    def _keep_serving(self, held: ModelVersion, reason: str, before: str | None) -> ModelVersion:
        """A served version whose artifact no longer verifies (changed, truncated, gone):
        the copy in memory was verified when it loaded, so it keeps serving, and the problem
        is logged (once per reason) and reported as the version's problem."""
        key = f"{held.name}/{held.version}"
        problem = f"{reason}; the copy loaded before keeps serving"
        if before != problem:
            logger.error("model %s version %d: %s", held.name, held.version, problem)
        self._stale[key] = problem
        return held

    async def _report(self, record: VersionRecord, status: Status, reason: str) -> None:
        try:
            await asyncio.to_thread(
                self.registry.set_status, record.model, record.version, status, reason
            )
        except InferdError as err:
            logger.warning("could not record status of %s/%d: %s", record.model,
                           record.version, err.message)  # fmt: skip

    def _config(self, model: ModelRecord) -> ModelConfig:
        if model.config is None:
            raise ConfigError(f"registry model '{model.name}'", "config", "no model config; "
                              "register the model with a config (platform at least)")  # fmt: skip
        return parse_model_config(model.config, f"registry model '{model.name}'", model.name)

    # -- on demand ---------------------------------------------------------------------------

    async def load_on_demand(self, name: str, version: str | None) -> ModelVersion:
        """Load a registered version that is not loaded, for a request that needs it.

        Requests for the same version share one load; at most ``MAX_LOAD_WAITERS`` wait.

        Raises:
            ModelNotFound: the registry has no such model or version.
            ModelLoadError: the load failed.
            QueueFull: too many requests already wait for this load.
        """
        record = self._record(name, version)
        key = (name, record.version)
        if self._waiters.get(key, 0) >= MAX_LOAD_WAITERS:
            raise QueueFull(name, str(record.version), MAX_LOAD_WAITERS)
        task = self._loading.get(key)
        if task is None:
            config = self._config(self._models[name])
            task = asyncio.ensure_future(self._ensure(config, record, on_demand=True))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            loaded = await asyncio.shield(task)
        finally:
            self._waiters[key] -= 1
        if loaded.state is not VersionState.READY:
            if loaded.retryable:
                raise ModelNotReady(name, str(record.version), loaded.reason)
            raise ModelLoadError(name, record.version, loaded.reason)
        return self.manager.get(name, loaded.label if version is not None else None)

    def _record(self, name: str, version: str | None) -> VersionRecord:
        if name not in self._models or name in self.held_unloaded:
            raise ModelNotFound(name, known=sorted(self._models))
        records = [r for r in self._versions.get(name, []) if r.stage is not Stage.ARCHIVED]
        if version is not None:
            match = [r for r in self._versions.get(name, []) if str(r.version) == version]
            if not match:
                raise ModelNotFound(name, version)
            return match[0]
        production = [r for r in records if r.stage is Stage.PRODUCTION]
        usable = production or [r for r in records if r.status is not Status.FAILED]
        if not usable:
            raise ModelNotFound(name, known=sorted(self._models))
        return usable[-1]

    # -- repository extension ----------------------------------------------------------------

    async def load_model(self, name: str) -> None:
        """Re-import a model folder (when one is served), retry failed versions, reconcile."""
        self.held_unloaded.discard(name)
        if self.importer is not None and name in self.importer.model_names():
            await asyncio.to_thread(self.importer.import_model, name)
        elif name not in self._models:
            await self.reconcile(only=name)
        try:
            records = await asyncio.to_thread(self.registry.list_versions, name)
        except ModelNotFound:
            records = []
        for record in records:
            if record.status is Status.FAILED:  # an explicit load retries failed versions
                await self._report(record, Status.REGISTERED, "")
        problems = await self.reconcile(only=name)
        if name not in self._models:
            raise ModelNotFound(name, known=sorted(self._models))
        ready = [v for v in self.manager.versions(name) if v.state is VersionState.READY]
        # An explicit load that could not verify a serving version's artifact fails, though
        # the loaded copy keeps serving.
        stale = [key for key in problems if key in self._stale]
        if stale or (problems and not ready):
            first = stale[0] if stale else next(iter(problems))
            raise ModelLoadError(name, first.split("/")[-1], problems[first])

    async def unload_model(self, name: str) -> None:
        """Unload every version here and keep the model unloaded until ``load_model``."""
        if name not in self._models and name not in self.manager.names():
            raise ModelNotFound(name, known=sorted(self._models))
        self.held_unloaded.add(name)
        if name in self.manager.names():
            await self.manager.unload(name)

    def repository_index(self) -> list[dict[str, str]]:
        """Registered models and their versions with this process's state."""
        index: list[dict[str, str]] = []
        for name in sorted(set(self._models) | set(self.manager.names())):
            held = {v.version: v for v in self.manager.versions(name)} if name in (
                self.manager.names()) else {}  # fmt: skip
            if not held:
                reason = "unloaded" if name in self.held_unloaded else "not loaded"
                index.append({"name": name, "state": "UNAVAILABLE", "reason": reason})
                continue
            for version in held.values():
                entry = {"name": name, "version": version.label, "state": version.state.value}
                if version.reason:
                    entry["reason"] = version.reason
                index.append(entry)
        return index


def _with_status(record: VersionRecord, status: Status) -> VersionRecord:
    return replace(record, status=status)
