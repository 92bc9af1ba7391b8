"""Custom Python models: a ``model.py`` holding one class that loads and infers.

    Runtime (ABC)
    └── MeasuredRuntime
        ├── PythonRuntime    imports model.py and delegates to the class inside
        └── PythonModel      a convenient base for that class: signature from model.yaml

The class either subclasses :class:`inferd.runtimes.Runtime` (``PythonModel`` is the easy way)
or simply has ``load()`` and ``infer(inputs) -> dict``. It is built with the runtime's own
arguments ``(config, artifact, device)`` (or none, if its constructor takes none). When
model.py holds several such classes, ``parameters.class_name`` names the one to serve.

model.py runs with the server's rights, like any code you deploy; see docs/runtimes.md.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import InferdError, ModelNotReady
from inferd.runtimes._memory import LoadMeter, MeasuredRuntime
from inferd.runtimes._signature import SignatureProblem, cast_outputs, declared, merge
from inferd.runtimes.base import MemoryUsage, Runtime
from inferd.types import Signature

_counter = itertools.count()


class PythonModel(Runtime):
    """Base for a model.py class whose signature is declared in model.yaml.

    Override ``infer`` (and ``load`` to read files next to ``self.artifact``, the model.py).
    """

    def load(self) -> None:
        """Nothing to read by default."""

    def signature(self) -> Signature:
        """The inputs and outputs model.yaml declares."""
        try:
            return declared(self.config, "a python model")
        except SignatureProblem as err:
            raise self.load_error(str(err)) from None


class PythonRuntime(MeasuredRuntime):
    """Imports ``model.py`` under a unique module name and serves the class inside it."""

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._model: Any = None
        self._module_name = ""
        self._signature: Signature | None = None

    def load(self) -> None:
        """Import model.py, build its model class, load it and settle the signature.

        Raises:
            ConfigError: an unknown ``parameters.class_name`` type.
            ModelLoadError: model.py is missing, fails to import, holds no (or several)
                model classes, its load fails, or no signature is declared.
        """
        class_name = self.config.parameters.get("class_name")
        if class_name is not None and not isinstance(class_name, str):
            raise self.config_error("parameters.class_name", f"expected text, got {class_name!r}")
        if not self.artifact.is_file():
            raise self.load_error(f"{self.artifact}: not found, expected a model.py file")
        meter = LoadMeter()
        with meter:
            module = self._import()
            try:
                model = self._build(self._find_class(module, class_name))
                self._load_and_settle(model)
            except BaseException:
                sys.modules.pop(self._module_name, None)
                raise
        self._model = model
        self.device = str(getattr(model, "device", "cpu"))
        # The class says whether one object may infer in several threads at once.
        self.thread_safe = bool(getattr(model, "thread_safe", True))
        self._usage = _own_usage(model) or meter.usage(fallback=self.artifact.stat().st_size)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the class's ``infer`` and cast its outputs to the signature."""
        model, signature = self._model, self._signature
        if model is None or signature is None:
            raise ModelNotReady(self.config.name, self.model_version, "unloaded")
        outputs = model.infer(inputs)
        if not isinstance(outputs, Mapping):
            raise TypeError(
                f"{self.artifact}: infer() returned {type(outputs).__name__}; expected a dict "
                f"of output name -> array with keys {[s.name for s in signature.outputs]}"
            )
        missing = [s.name for s in signature.outputs if s.name not in outputs]
        if missing:
            raise KeyError(f"{self.artifact}: infer() returned no {missing}; got {list(outputs)}")
        return cast_outputs(outputs, signature.outputs)

    def unload(self) -> None:
        """Call the class's ``unload`` (if any), then forget the model and its module."""
        model, self._model = self._model, None
        try:
            if model is not None and callable(getattr(model, "unload", None)):
                model.unload()
        finally:
            sys.modules.pop(self._module_name, None)
            self._released()

    def _import(self) -> ModuleType:
        # A unique name per load: two models (or two versions) may both be called model.py.
        safe = "".join(c if c.isalnum() else "_" for c in self.config.name)
        self._module_name = f"inferd_model_{safe}_{self.model_version}_{next(_counter)}"
        spec = importlib.util.spec_from_file_location(self._module_name, self.artifact)
        if spec is None or spec.loader is None:
            raise self.load_error(f"{self.artifact}: cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self._module_name] = module  # dataclasses and pickle look modules up here
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(self._module_name, None)
            problem = f"{self.artifact}: import failed: {_where(err, self.artifact)}"
            raise self.load_error(problem) from err
        return module

    def _build(self, cls: type) -> Any:
        try:
            takes_args = bool(inspect.signature(cls).parameters)
        except (TypeError, ValueError):
            takes_args = True
        try:
            return cls(self.config, self.artifact, self.requested_device) if takes_args else cls()
        except InferdError:
            raise
        except Exception as err:
            raise self.load_error(
                f"{self.artifact}: {cls.__name__}() failed: {_where(err, self.artifact)}"
            ) from err

    def _load_and_settle(self, model: Any) -> None:
        try:
            model.load()
        except InferdError:
            raise
        except Exception as err:
            raise self.load_error(
                f"{self.artifact}: load() failed: {_where(err, self.artifact)}"
            ) from err
        try:
            self._signature = self._settle(model)
        except BaseException:
            if callable(getattr(model, "unload", None)):
                model.unload()
            raise

    def _find_class(self, module: ModuleType, class_name: str | None) -> type:
        defined = [
            obj for obj in vars(module).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__
        ]  # fmt: skip
        if class_name is not None:
            chosen = [cls for cls in defined if cls.__name__ == class_name]
        else:
            chosen = [c for c in defined if issubclass(c, Runtime) and not inspect.isabstract(c)]
            if not chosen:
                chosen = [c for c in defined if _duck_typed(c)]
        if len(chosen) == 1:
            return chosen[0]
        if class_name is not None:
            problem = f"no class named '{class_name}' (classes: {[c.__name__ for c in defined]})"
        else:
            problem = (
                "expected one model class (a Runtime subclass, or a class with load() and "
                f"infer()), found {[c.__name__ for c in chosen]}; set parameters.class_name"
            )
        raise self.load_error(f"{self.artifact}: {problem}")

    def _settle(self, model: Any) -> Signature:
        own: Signature | None = None
        if isinstance(model, Runtime) and not isinstance(model, PythonModel):
            own = model.signature()
        try:
            if own is None:
                return declared(self.config, f"the python model {self.artifact}")
            return Signature(
                merge(own.inputs, self.config.inputs, "input"),
                merge(own.outputs, self.config.outputs, "output"),
            )
        except SignatureProblem as err:
            raise self.load_error(f"{self.artifact}: {err}") from None


def _duck_typed(cls: type) -> bool:
    return callable(getattr(cls, "infer", None)) and callable(getattr(cls, "load", None))


def _own_usage(model: Any) -> MemoryUsage | None:
    """The memory the model class reports itself, when it overrides the defaults."""
    kind = type(model)
    if isinstance(model, Runtime) and kind.memory_usage is not Runtime.memory_usage:
        usage = model.memory_usage()
        return usage if isinstance(usage, MemoryUsage) else None
    own = getattr(kind, "memory_bytes", None)
    if callable(own) and own is not Runtime.memory_bytes:
        return MemoryUsage(host_bytes=int(model.memory_bytes()))
    return None


def _where(err: BaseException, path: Path) -> str:
    """``Type: message (model.py line N)``: the user's line, not inferd's."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)]
    line = f" ({path.name} line {frames[-1].lineno})" if frames else ""
    if isinstance(err, SyntaxError) and err.lineno:
        line = f" ({path.name} line {err.lineno})"
    return f"{type(err).__name__}: {err}{line}"
