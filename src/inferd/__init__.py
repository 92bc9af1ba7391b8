"""inferd: model serving with a registry, dynamic batching, hot swaps and batch jobs.

The public API is re-exported here and imported lazily, so ``import inferd`` stays cheap and
pulls in no framework, database driver or web server until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BatchPolicy": "inferd.batching",
    "Batcher": "inferd.batching",
    "InferdError": "inferd.errors",
    "InferenceRequest": "inferd.types",
    "InferenceResponse": "inferd.types",
    "JobService": "inferd.jobs",
    "JobSpec": "inferd.jobs",
    "ModelConfig": "inferd.config",
    "PreprocessingConfig": "inferd.preprocess",
    "Preprocessor": "inferd.preprocess",
    "Registry": "inferd.registry",
    "Runtime": "inferd.runtimes",
    "Settings": "inferd.settings",
    "Signature": "inferd.types",
    "TensorSpec": "inferd.types",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inferd' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
