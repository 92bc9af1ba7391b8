"""A runtime behind its model's declared preprocessing, for batch jobs.

    PreprocessedRuntime(Runtime)
    ├── inner: the framework runtime (model input tensors)
    └── preprocessor: raw columns -> model inputs (inferd.preprocess.apply)

A job binds table columns to the runtime's signature, so wrapping the runtime makes a job
read the raw columns by name and call the same :meth:`Preprocessor.apply` online serving
calls. A row a rule refuses fails on its own: the job's processor halves a failing batch
until it finds the row, and the row goes to the errors file with the rule's message.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from inferd.config import ModelConfig
from inferd.preprocess.apply import Preprocessor
from inferd.preprocess.compile import compile_preprocessing
from inferd.runtimes.base import MemoryUsage, Runtime
from inferd.types import Signature


class PreprocessedRuntime(Runtime):
    """``inner`` with ``preprocessor`` applied to every batch.

    Args:
        inner: a loaded runtime.
        preprocessor: compiled against ``inner``'s signature.
    """

    def __init__(self, inner: Runtime, preprocessor: Preprocessor) -> None:
        super().__init__(inner.config, inner.artifact, inner.requested_device)
        self.inner = inner
        self.preprocessor = preprocessor
        self.device = inner.device

    def load(self) -> None:
        self.inner.load()

    def signature(self) -> Signature:
        """Raw columns in (one value per row each), the model's outputs out."""
        return self.preprocessor.signature(self.inner.signature())

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.infer(self.preprocessor.apply(inputs))

    def unload(self) -> None:
        self.inner.unload()

    def memory_usage(self) -> MemoryUsage:
        return self.inner.memory_usage()

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """Columns whose missing values go to the rules (impute) instead of being refused."""
        return tuple(c.name for c in self.preprocessor.columns)


def with_preprocessing(runtime: Runtime, config: ModelConfig, source: str) -> Runtime:
    """``runtime`` wrapped when ``config`` declares preprocessing, else ``runtime`` itself.

    Raises:
        ConfigError: the block does not fit the model's signature (``source`` names where).
    """
    if config.preprocessing is None:
        return runtime
    try:
        compiled = compile_preprocessing(config.preprocessing, runtime.signature(), source)
    except Exception:
        runtime.unload()
        raise
    return PreprocessedRuntime(runtime, compiled)
