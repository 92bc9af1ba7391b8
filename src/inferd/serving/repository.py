"""The model repository folder: ``<root>/<model>/model.yaml`` and ``<root>/<model>/<version>/``.

Reading a repository never loads anything; it says which versions exist, which the version
policy selects, and where each artifact is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from inferd.config import ARTIFACT_NAMES, ModelConfig, load_model_config
from inferd.errors import ConfigError, InferdError, ModelNotFound

logger = logging.getLogger(__name__)

CONFIG_FILE = "model.yaml"


@dataclass(frozen=True, slots=True)
class VersionArtifact:
    """One version folder and the artifact inside it (None when none was found)."""

    version: int
    folder: Path
    artifact: Path | None

    def problem(self, platform: str) -> str:
        expected = " or ".join(ARTIFACT_NAMES[platform])
        return f"{self.folder}: no artifact found, expected {expected}"


@dataclass(frozen=True, slots=True)
class RepositoryModel:
    """A model folder: its config and the versions its version policy selects."""

    name: str
    folder: Path
    config: ModelConfig
    versions: tuple[VersionArtifact, ...]


def model_names(root: Path) -> list[str]:
    """Names of the model folders under ``root`` (folders holding a model.yaml), sorted."""
    if not root.is_dir():
        raise ConfigError(str(root), "model_repository", "not a directory; pass an existing folder")
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def read_model(root: Path, name: str) -> RepositoryModel:
    """Read one model folder.

    Raises:
        ModelNotFound: there is no ``<root>/<name>/model.yaml``.
        ConfigError: the model.yaml is invalid or no version folder exists.
    """
    folder = root / name
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelNotFound(name, known=model_names(root))
    config = load_model_config(config_path, default_name=name)
    if config.name != name:
        raise ConfigError(
            str(config_path), "name", f"must match the folder name '{name}', got '{config.name}'"
        )
    found = _versions(folder, config.platform)
    if not found:
        raise ConfigError(
            str(folder), "(versions)", "no version folder; add e.g. 1/ holding the artifact"
        )
    selected = set(config.version_policy.select(list(found)))
    if not selected:
        raise ConfigError(
            str(config_path),
            "version_policy",
            f"selects none of the versions found {sorted(found)}",
        )
    versions = tuple(found[v] for v in sorted(selected))
    return RepositoryModel(name=name, folder=folder, config=config, versions=versions)


def scan(root: Path) -> tuple[list[RepositoryModel], dict[str, InferdError]]:
    """Read every model folder; a broken one is reported, not fatal for the others."""
    models: list[RepositoryModel] = []
    failures: dict[str, InferdError] = {}
    for name in model_names(root):
        try:
            models.append(read_model(root, name))
        except InferdError as err:
            logger.error("model repository: %s", err)
            failures[name] = err
    return models, failures


def _versions(folder: Path, platform: str) -> dict[int, VersionArtifact]:
    found: dict[int, VersionArtifact] = {}
    for child in folder.iterdir():
        if not child.is_dir():
            continue
        if not child.name.isdigit():
            logger.warning("model repository: ignoring %s (version folders are integers)", child)
            continue
        artifact = next((child / n for n in ARTIFACT_NAMES[platform] if (child / n).exists()), None)
        found[int(child.name)] = VersionArtifact(int(child.name), child, artifact)
    return found
