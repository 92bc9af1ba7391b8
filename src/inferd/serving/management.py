"""The management plane: registry changes for the REST API and the CLI.

Each call runs the blocking registry work in a thread, then reconciles this process at once
(other replicas follow within their poll interval). Promotion and rollback load and warm the
target version *before* the registry moves traffic to it, so a version that cannot load never
becomes production and the current one keeps serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inferd.config import parse_model_config
from inferd.errors import ConfigError, Conflict, ModelLoadError, ModelNotFound, PromotionRefused
from inferd.registry import ArtifactStore, AuditEntry, ModelRecord, Registry, Stage, VersionRecord
from inferd.registry.artifacts import local_path
from inferd.runtimes.trust import check_code_root
from inferd.serving.control import ModelControl


class ManagementPlane:
    """Registry operations with their effect on serving.

    Args:
        registry: the registry.
        artifacts: describes (digest, size) and uploads artifacts.
        control: this process's model control, reconciled after each change; None when
            writing the registry directly (the CLI), where servers follow at their next poll.
        code_roots: folders artifacts that run code may come from; None for no check.
    """

    def __init__(
        self, registry: Registry, artifacts: ArtifactStore, control: ModelControl | None,
        code_roots: Sequence[Path] | None = None,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.artifacts = artifacts
        self.control = control
        self.code_roots = code_roots

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _reconcile(self, name: str) -> None:
        if self.control is not None:
            await self.control.reconcile(only=name)

    # -- reads -------------------------------------------------------------------------------

    async def list_models(self, **filters: str | None) -> list[ModelRecord]:
        result: list[ModelRecord] = await self._call(self.registry.list_models, **filters)
        return result

    async def show_model(self, name: str) -> dict[str, Any]:
        """The model with its versions and what this process serves of it."""
        model: ModelRecord = await self._call(self.registry.get_model, name)
        versions: list[VersionRecord] = await self._call(self.registry.list_versions, name)
        manager = self.control.manager if self.control is not None else None
        held = {}
        if manager is not None and name in manager.names():
            held = {v.version: v for v in manager.versions(name)}
        entries = []
        for record in versions:
            entry = record.to_dict()
            here = held.get(record.version)
            if manager is not None:
                entry["served"] = here.state.value if here is not None else "NOT_LOADED"
            entries.append(entry)
        return {**model.to_dict(), "versions": entries}

    async def list_versions(self, name: str, **filters: str | None) -> list[VersionRecord]:
        result: list[VersionRecord] = await self._call(self.registry.list_versions, name, **filters)
        return result

    async def get_version(self, name: str, version: int) -> VersionRecord:
        result: VersionRecord = await self._call(self.registry.get_version, name, version)
        return result

    async def audit(self, name: str | None, limit: int = 100) -> list[AuditEntry]:
        result: list[AuditEntry] = await self._call(self.registry.audit, name, limit)
        return result

    # -- changes -----------------------------------------------------------------------------

    async def register_version(
        self, name: str, artifact_uri: str, *, version: int | None = None,
        metadata: dict[str, Any] | None = None, stage: str = "registered",
        config: dict[str, Any] | None = None, actor: str = "",
    ) -> VersionRecord:  # fmt: skip
        """Register an artifact as a new version, creating the model when a config is given.

        Raises:
            ArtifactError: the artifact cannot be read. ConfigError: bad or missing config.
            Conflict: the version exists.
        """
        await self._ensure_model(name, config, actor)
        model: ModelRecord = await self._call(self.registry.get_model, name)
        platform = str((model.config or {}).get("platform", ""))
        if model.config is not None:  # refuse code from elsewhere now, not at load
            parsed = parse_model_config(model.config, f"config of model '{name}'", name)
            check_code_root(parsed, local_path(artifact_uri), self.code_roots)
        digest, size = await self._call(self.artifacts.describe, artifact_uri)
        record: VersionRecord = await self._call(
            self.registry.register_version, name, platform=platform, artifact_uri=artifact_uri,
            digest=digest, size_bytes=size, version=version, stage=stage, actor=actor,
            metadata=metadata,
        )  # fmt: skip
        await self._reconcile(name)
        return record

    async def _ensure_model(self, name: str, config: dict[str, Any] | None, actor: str) -> None:
        if config is not None:
            validated = parse_model_config(config, f"config of model '{name}'", name)
            data = validated.model_dump(mode="json")
            await self._call(self.registry.ensure_model, name, data, actor)
            return
        try:
            await self._call(self.registry.get_model, name)
        except ModelNotFound:
            raise ConfigError(
                f"model '{name}'", "config",
                "the model does not exist yet: pass a config with at least its platform",
            ) from None  # fmt: skip

    async def update_model(self, name: str, actor: str = "", **changes: Any) -> ModelRecord:
        if "config" in changes and changes["config"] is not None:
            config = parse_model_config(changes["config"], f"config of model '{name}'", name)
            changes["config"] = config.model_dump(mode="json")
        record: ModelRecord = await self._call(
            self.registry.update_model, name, actor=actor, **changes
        )
        await self._reconcile(name)
        return record

    async def update_version(
        self, name: str, version: int, actor: str = "", **metadata: Any
    ) -> VersionRecord:
        record: VersionRecord = await self._call(
            self.registry.update_version, name, version, actor=actor, **metadata
        )
        await self._reconcile(name)
        return record

    async def promote(self, name: str, version: int, actor: str = "") -> VersionRecord:
        """Load and warm ``version`` here, then make it production; the old one drains.

        Raises:
            PromotionRefused: a gate fails, or the version fails to load (then recorded).
        """
        record: VersionRecord = await self._call(self.registry.get_version, name, version)
        if record.stage is not Stage.PRODUCTION:
            await self._preload(name, version)
        record = await self._call(self.registry.promote, name, version, actor=actor)
        await self._reconcile(name)
        return record

    async def set_stage(
        self, name: str, version: int, stage: str, actor: str = ""
    ) -> VersionRecord:
        if stage == Stage.PRODUCTION:
            return await self.promote(name, version, actor)
        record: VersionRecord = await self._call(
            self.registry.set_stage, name, version, stage, actor=actor
        )
        await self._reconcile(name)
        return record

    async def rollback(self, name: str, actor: str = "") -> VersionRecord:
        """Return production to the previous production version, with the same swap."""
        target = await self._rollback_target(name)
        await self._preload(name, target)
        record: VersionRecord = await self._call(self.registry.rollback, name, actor=actor)
        await self._reconcile(name)
        return record

    async def delete_version(self, name: str, version: int, actor: str = "") -> None:
        await self._call(self.registry.delete_version, name, version, actor=actor)
        await self._reconcile(name)

    async def delete_model(self, name: str, actor: str = "") -> None:
        await self._call(self.registry.delete_model, name, actor=actor)
        await self._reconcile(name)

    async def _preload(self, name: str, version: int) -> None:
        if self.control is None:
            return  # direct registry writes: each server preloads on its own reconcile
        try:
            await self.control.preload(name, version)
        except ModelLoadError as err:
            raise PromotionRefused(name, version, f"it failed to load: {err.reason}") from err

    async def _rollback_target(self, name: str) -> int:
        versions: list[VersionRecord] = await self._call(self.registry.list_versions, name)
        promoted = sorted(
            (v for v in versions if v.promoted_at is not None and v.stage is not Stage.PRODUCTION),
            key=lambda v: v.promoted_at,  # type: ignore[arg-type, return-value]
        )
        if not promoted:
            raise Conflict(f"model '{name}': no earlier production version to roll back to")
        return promoted[-1].version
