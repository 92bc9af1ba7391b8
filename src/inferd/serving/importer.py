"""Import a model repository folder into the registry, and keep watching it.

The folder is a convenience on top of the registry, not a second source of truth: each
``<model>/model.yaml`` becomes the model's config and each ``<model>/<N>/`` artifact becomes
version N, registered once. A file changed in place after registration is not re-registered:
its digest no longer matches, so loading it is refused until it is registered as a new version.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inferd.errors import Conflict, InferdError, ModelNotFound, RegistryUnavailable
from inferd.registry import Registry, digest_path
from inferd.serving import repository

logger = logging.getLogger(__name__)

ACTOR = "repository"


class RepositoryImporter:
    """Registers what a repository folder holds.

    Args:
        root: the repository folder.
        registry: where models and versions are registered.
    """

    def __init__(self, root: Path, registry: Registry) -> None:
        self.root = root
        self.registry = registry
        self._known: dict[str, set[int]] = {}
        self._warned: set[tuple[str, int]] = set()

    def model_names(self) -> list[str]:
        return repository.model_names(self.root)

    def import_all(self) -> dict[str, str]:
        """Import every model folder; returns problems by model name. Blocking: use a thread."""
        problems: dict[str, str] = {}
        for name in self.model_names():
            try:
                self.import_model(name)
            except InferdError as err:
                logger.error("model repository: %s", err.message)
                problems[name] = err.message
        return problems

    def import_model(self, name: str) -> bool:
        """Register a model folder's config and new versions; True when anything changed.

        Raises:
            ModelNotFound: no such folder. ConfigError: its model.yaml is invalid.
        """
        folder = self.root / name
        config = repository.read_config(self.root, name)  # model.yaml or config.pbtxt
        data = config.model_dump(mode="json")
        before = self.registry.get_model(name).config if self._has_model(name) else None
        self.registry.ensure_model(name, data, actor=ACTOR)
        changed = before != data
        registered = {v.version: v for v in self.registry.list_versions(name)}
        for number, artifact in repository.version_artifacts(folder, config.platform).items():
            if number in registered:
                self._warn_if_changed(name, number, artifact, registered[number].digest)
                continue
            digest, size = digest_path(artifact)
            try:
                self.registry.register_version(
                    name, platform=config.platform, artifact_uri=str(artifact), digest=digest,
                    size_bytes=size, version=number, actor=ACTOR,
                )  # fmt: skip
                changed = True
                logger.info("model repository: registered %s version %d", name, number)
            except Conflict:
                pass  # another replica registered it first
        return changed

    def scan_changes(self) -> bool:
        """Import folders whose set of versions changed since the last scan (cheap polling).

        Raises:
            RegistryUnavailable: the registry database cannot be reached; the next scan
                tries the folders again.
        """
        changed = False
        for name in self.model_names():
            folder = self.root / name
            numbers = {int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()}
            mtime = (repository.config_file(folder) or folder).stat().st_mtime_ns
            signature = numbers | {-mtime}
            if self._known.get(name) == signature:
                continue
            try:
                changed |= self.import_model(name)
                self._known[name] = signature
            except RegistryUnavailable:
                # Not this folder's fault: leave it unscanned, so it is imported once the
                # registry is back; the caller's loop logs the outage (once).
                raise
            except InferdError as err:
                logger.error("model repository: %s", err.message)
                self._known[name] = signature
        return changed

    def _has_model(self, name: str) -> bool:
        try:
            self.registry.get_model(name)
        except ModelNotFound:
            return False
        return True

    def _warn_if_changed(self, name: str, number: int, artifact: Path, digest: str) -> None:
        if (name, number) in self._warned:
            return
        if digest_path(artifact)[0] != digest:
            self._warned.add((name, number))
            logger.warning(
                "model repository: %s changed after it was registered as %s version %d; it "
                "will not load until registered as a new version", artifact, name, number,
            )  # fmt: skip
