"""The model repository folder: ``<root>/<model>/model.yaml`` (or Triton's ``config.pbtxt``)
and ``<root>/<model>/<version>/<artifact>``.

Reading a repository never loads anything: it finds the models, their configs and the
artifact of each version folder. The importer turns that into registry entries.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inferd.config import ARTIFACT_NAMES, ModelConfig, load_model_config
from inferd.errors import ConfigError, ModelNotFound
from inferd.serving.triton_config import CONFIG_FILE as TRITON_CONFIG_FILE
from inferd.serving.triton_config import load_triton_config

logger = logging.getLogger(__name__)

CONFIG_FILE = "model.yaml"


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


def read_config(root: Path, name: str) -> ModelConfig:
    """The config of model folder ``name``.

    Raises:
        ModelNotFound: the folder has no model.yaml or config.pbtxt.
        ConfigError: the config is invalid or names another model.
    """
    path = config_file(root / name)
    if path is None:
        raise ModelNotFound(name, known=model_names(root))
    config = load_config(path, name)
    if config.name != name:
        raise ConfigError(
            str(path), "name", f"must match the folder name '{name}', got '{config.name}'"
        )
    return config


def version_artifacts(folder: Path, platform: str) -> dict[int, Path]:
    """Version number -> artifact path of each version folder of a model folder.

    Folders that are not integers, or hold no artifact for the platform, are logged and
    left out.
    """
    found: dict[int, Path] = {}
    for child in folder.iterdir():
        if not child.is_dir():
            continue
        if not child.name.isdigit():
            logger.warning("model repository: ignoring %s (version folders are integers)", child)
            continue
        names = ARTIFACT_NAMES[platform]
        artifact = next((child / n for n in names if (child / n).exists()), None)
        if artifact is None:
            logger.error("model repository: %s has no artifact (expected %s)", child,
                         " or ".join(names))  # fmt: skip
            continue
        found[int(child.name)] = artifact
    return found
