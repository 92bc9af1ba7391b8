"""Preprocessing is versioned with the model: each version runs the block it was registered
with (``model_versions.preprocessing``), not whatever ``model.yaml`` says today.

Editing the block in ``model.yaml`` therefore changes nothing for the versions already
registered; the next version registered picks it up. A version registered without a block
takes the model's input tensors as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from inferd.config import ModelConfig
from inferd.errors import ConfigError
from inferd.preprocess.spec import PreprocessingConfig


def version_config(
    config: ModelConfig, block: Mapping[str, Any] | None, source: str
) -> ModelConfig:
    """``config`` with the preprocessing block a version was registered with.

    Raises:
        ConfigError: the stored block no longer validates (``source`` names the version).
    """
    if block is None:
        return config if config.preprocessing is None else config.model_copy(
            update={"preprocessing": None}
        )  # fmt: skip
    try:
        parsed = PreprocessingConfig.model_validate(block)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(["preprocessing", *(str(p) for p in first["loc"])])
        raise ConfigError(source, field, first["msg"]) from err
    if parsed == config.preprocessing:
        return config
    return config.model_copy(update={"preprocessing": parsed})
