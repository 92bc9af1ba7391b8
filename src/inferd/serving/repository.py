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
from inferd.serving.triton_config import CONFIG_FILE as TRITON_CONFIG_FILE
from inferd.serving.triton_config import load_triton_config

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
    """Names of the model folders under ``root`` (with a model.yaml or config.pbtxt), sorted."""
    if not root.is_dir():
        raise ConfigError(str(root), "model_repository", "not a directory; pass an existing folder")
    return sorted(p.name for p in root.iterdir() if config_file(p) is not None)


def config_file(folder: Path) -> Path | None:
    """A model folder's config: its model.yaml, else Triton's config.pbtxt, else None."""
    for path in (folder / CONFIG_FILE, folder / TRITON_CONFIG_FILE):
        if path.is_file():
            return path
    return None


def load_config(path: Path, name: str) -> ModelConfig:
    """Read a model.yaml, or a config.pbtxt as if it were one (see ``triton_config``)."""
    if path.name == TRITON_CONFIG_FILE:
        return load_triton_config(path, default_name=name)
    return load_model_config(path, default_name=name)


def read_model(root: Path, name: str) -> RepositoryModel:
    """Read one model folder.

    Raises:
        ModelNotFound: there is no ``<root>/<name>/model.yaml``.
        ConfigError: the model.yaml is invalid or no version folder exists.
    """
    folder = root / name
    config_path = config_file(folder)
    if config_path is None:
        raise ModelNotFound(name, known=model_names(root))
    config = load_config(config_path, name)
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
