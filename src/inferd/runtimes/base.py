"""The runtime extension point: one small ABC every framework implements.

    Runtime (ABC)
    ├── OnnxRuntime        inferd.runtimes.onnx
    └── ... one module per framework, imported only when a model needs it

A runtime is created for one model version, loaded once, then called from the batcher's worker
threads. ``infer`` is synchronous and may block; it is never called on the event loop.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import ConfigError, FrameworkMissing, ModelLoadError
from inferd.types import Signature, TensorSpec


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """Bytes a model version holds in host memory and on its device."""

    host_bytes: int = 0
    device_bytes: int = 0

    @property
    def total(self) -> int:
        return self.host_bytes + self.device_bytes


class Runtime(ABC):
    """A loaded model version that turns named arrays into named arrays.

    Args:
        config: the model's configuration.
        artifact: path of the artifact file (or folder) of this version.
        device: ``auto``, ``cpu`` or ``cuda:N``, from the config.
    """

    #: Whether one loaded copy may run ``infer`` in several threads at once. When False, every
    #: instance (``instances`` in model.yaml) gets a loaded copy of its own, at the memory cost
    #: of one more copy each.
    thread_safe: bool = True

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        self.config = config
        self.artifact = artifact
        self.requested_device = device
        self.device = "cpu"

    @property
    def model_version(self) -> str:
        """The version label; runtimes are not told it, the artifact sits in <model>/<version>/."""
        return self.artifact.parent.name

    def load_error(self, problem: str) -> ModelLoadError:
        """A :class:`ModelLoadError` for this model version; ``problem`` names file and fix."""
        return ModelLoadError(self.config.name, self.model_version, problem)

    def config_error(self, field: str, problem: str) -> ConfigError:
        """A :class:`ConfigError` naming this model's model.yaml and ``field``."""
        return ConfigError(f"model.yaml of {self.config.name}", field, problem)

    def check_parameters(self, known: Sequence[str]) -> None:
        """Refuse ``parameters`` entries this runtime does not know (typos fail loudly).

        Raises:
            ConfigError: naming the first unknown entry and the known ones.
        """
        unknown = sorted(set(self.config.parameters) - set(known))
        if unknown:
            expected = ", ".join(known) if known else "none for this platform"
            raise self.config_error(
                f"parameters.{unknown[0]}",
                f"unknown {self.config.platform} parameter; expected one of: {expected}",
            )

    def int_parameter(self, key: str, default: int) -> int:
        """A ``parameters`` entry that must be an integer >= 0. Raises ConfigError."""
        value = self.config.parameters.get(key, default)
        # bool is an int subclass; `true` in YAML is a typo here, not a count.
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.config_error(f"parameters.{key}", f"expected an integer >= 0, got {value!r}")
        return value

    @abstractmethod
    def load(self) -> None:
        """Read the artifact and get ready to infer.

        Raises:
            ModelLoadError: the artifact is missing, corrupt or does not match the config.
            FrameworkMissing: the framework's optional extra is not installed.
        """

    @abstractmethod
    def signature(self) -> Signature:
        """The model's inputs and outputs, after ``load``."""

    @abstractmethod
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on one batch. Every output's first dimension equals the inputs'."""

    def unload(self) -> None:  # noqa: B027 - optional hook, most runtimes rely on GC
        """Release the model's memory. Called once; the runtime is not used afterwards."""

    def memory_bytes(self) -> int:
        """Best estimate of the memory this version holds (0 when unknown)."""
        try:
            return sum(f.stat().st_size for f in _files(self.artifact))
        except OSError:
            return 0

    def memory_usage(self) -> MemoryUsage:
        """Host and device bytes this version holds; by default all of it counts as host."""
        return MemoryUsage(host_bytes=self.memory_bytes())

    def warmup(self, batch_sizes: list[int], iterations: int = 1) -> None:
        """Run synthetic inputs built from the signature, so the first real request is fast."""
        for rows in batch_sizes:
            inputs = {spec.name: synthetic_input(spec, rows) for spec in self.signature().inputs}
            for _ in range(iterations):
                self.infer(inputs)


def import_framework(module: str, platform: str, extra: str) -> Any:
    """Import a framework inside a runtime's ``load``, typed ``Any`` on purpose.

    Frameworks are optional extras and heavy to import; importing them by name keeps them out
    of the import graph of inferd (and of mypy's analysis).

    Raises:
        FrameworkMissing: naming the extra to install, e.g. ``pip install 'inferd[torch]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise FrameworkMissing(platform, extra, err) from err


def synthetic_input(spec: TensorSpec, rows: int) -> np.ndarray[Any, Any]:
    """An array that fits ``spec`` with ``rows`` rows; other dynamic dimensions become 1."""
    first = spec.shape[0] if spec.shape[0] > 0 else rows
    shape = [first] + [d if d > 0 else 1 for d in spec.shape[1:]]
    if spec.datatype == "BYTES":
        return np.full(shape, b"warmup", dtype=np.object_)
    if spec.datatype == "BOOL":
        return np.zeros(shape, dtype=np.bool_)
    return np.ones(shape, dtype=spec.dtype)


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
