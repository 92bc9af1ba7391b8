"""What the tabular runtimes share: one feature matrix in, named predictions out.

    Runtime (ABC)
    └── MeasuredRuntime
        └── TabularRuntime
            ├── SklearnRuntime    inferd.runtimes.sklearn
            ├── XGBoostRuntime    inferd.runtimes.xgboost
            └── LightGBMRuntime   inferd.runtimes.lightgbm

A subclass reads its model and says which outputs it offers (``predict``, ``predict_proba``,
``margin``, ...) with their natural datatypes and shapes. The input is named ``x`` with shape
``[-1, n_features]`` unless model.yaml declares one input (any name; ``[-1]`` for a
one-feature model). Declared outputs pick offered outputs by name; the other declared outputs
take the remaining offered ones in order, renamed. Either may ask for another numeric datatype
(``FP32`` for a float64 ``predict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig, TensorConfig
from inferd.errors import ModelNotReady
from inferd.runtimes._device import out_of_memory
from inferd.runtimes._memory import LoadMeter, MeasuredRuntime
from inferd.runtimes._signature import SignatureProblem, cast_outputs, datatype_for, merge_shape
from inferd.types import Signature, TensorSpec

INPUT_NAME = "x"


class TabularRuntime(MeasuredRuntime):
    """One 2-D numeric input; outputs computed by :meth:`predict`.

    Subclasses set ``framework`` and implement ``_read``, ``_n_features``, ``_offered`` and
    ``predict``; they may override ``_place`` (CPU by default).
    """

    framework = "the framework"

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self.model: Any = None
        self._signature: Signature | None = None
        self._input_dtype: np.dtype[Any] = np.dtype(np.float64)
        self._sources: dict[str, str] = {}  # served output name -> offered output name

    def load(self) -> None:
        """Read the model, then settle the signature from it and model.yaml.

        Raises:
            FrameworkMissing: the framework is not installed.
            ConfigError: an unknown or invalid ``parameters`` entry.
            ModelLoadError: the file is missing, corrupt or of another format, the device is
                unavailable, or model.yaml disagrees with the model.
        """
        self._prepare()
        if not self.artifact.is_file():
            problem = "is a folder, expected a file" if self.artifact.is_dir() else "not found"
            raise self.load_error(f"{self.artifact}: {problem}")
        self.device = self._place()
        meter = LoadMeter()
        with meter:
            try:
                model = self._read()
            except MemoryError as err:
                raise out_of_memory(self, self.device, self.artifact.stat().st_size) from err
        try:
            signature = self._settle(model)
        except SignatureProblem as err:
            raise self.load_error(f"{self.artifact}: {err}") from None
        self.model, self._signature = model, signature
        self._usage = meter.usage(fallback=self.artifact.stat().st_size)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict every output for one batch of rows."""
        signature = self._signature
        if self.model is None or signature is None:
            raise ModelNotReady(self.config.name, self.model_version, "unloaded")
        x = inputs[signature.inputs[0].name]
        if x.ndim == 1:  # a one-feature model declared with shape [-1]
            x = x.reshape(-1, 1)
        x = x.astype(self._input_dtype, copy=False)
        offered = self.predict(self.model, x, set(self._sources.values()))
        served = {name: offered[source] for name, source in self._sources.items()}
        return cast_outputs(served, signature.outputs)

    def unload(self) -> None:
        """Drop the model and give its memory back."""
        self.model = None
        self._released()

    def predict(self, model: Any, x: np.ndarray, wanted: set[str]) -> dict[str, np.ndarray]:
        """Compute the ``wanted`` offered outputs of ``model`` for the rows of ``x``."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Import the framework and check ``parameters`` (before anything is read)."""

    def _place(self) -> str:
        if self.requested_device not in ("auto", "cpu"):
            raise self.load_error(
                f"device '{self.requested_device}' requested but {self.framework} models run "
                "on the CPU in inferd; set device: cpu or auto"
            )
        return "cpu"

    def _read(self) -> Any:
        raise NotImplementedError

    def _n_features(self, model: Any) -> int | None:
        raise NotImplementedError

    def _output_names(self, model: Any) -> list[str]:
        """The outputs the model can give, in order."""
        raise NotImplementedError

    def _offered(self, model: Any, n_features: int) -> list[TensorSpec]:
        # Running the model on one row tells each output's datatype and shape exactly, for
        # every estimator, pipeline and objective; warm-up would run it on the same row.
        names = self._output_names(model)
        probe = np.ones((1, n_features), dtype=self._input_dtype)
        try:
            values = {k: np.asarray(v) for k, v in self.predict(model, probe, set(names)).items()}
        except Exception as err:  # the framework's own errors: NotFittedError, ValueError...
            raise SignatureProblem(
                f"the model failed on a probe row of {n_features} ones "
                f"({type(err).__name__}: {str(err).strip()[:300]}); is it fitted, and does it "
                "take numeric features?"
            ) from err
        return [
            TensorSpec(name, datatype_for(values[name].dtype, f"output '{name}'"),
                       (-1, *values[name].shape[1:]))
            for name in names
        ]  # fmt: skip

    def _native_dtype(self) -> np.dtype[Any]:
        return np.dtype(np.float64)

    def _settle(self, model: Any) -> Signature:
        n_features = self._n_features(model)
        x = self._input_spec(n_features)
        self._input_dtype = self._native_dtype()
        offered = self._offered(model, n_features or _width(x))
        outputs = self._outputs(offered)
        return Signature((x,), outputs)

    def _input_spec(self, n_features: int | None) -> TensorSpec:
        native = self._native_dtype()
        datatype = {np.dtype(np.float32): "FP32"}.get(native, "FP64")
        inputs = self.config.inputs
        if not inputs:
            if n_features is None:
                raise SignatureProblem(
                    "the model does not record its number of features; declare the input in "
                    "model.yaml, e.g. {name: x, datatype: FP64, shape: [-1, N]}"
                )
            return TensorSpec(INPUT_NAME, datatype, (-1, n_features))
        if len(inputs) != 1:
            raise SignatureProblem(
                f"inputs: expected one input (the feature matrix), got {len(inputs)} in "
                "model.yaml; use the python platform to assemble features"
            )
        return _check_input(inputs[0], n_features)

    def _outputs(self, offered: list[TensorSpec]) -> tuple[TensorSpec, ...]:
        names = [spec.name for spec in offered]
        declared = self.config.outputs
        if not declared:
            self._sources = {name: name for name in names}
            return tuple(offered)
        if len(declared) > len(offered):
            raise SignatureProblem(
                f"outputs: expected at most {len(offered)} ({names}) from the model, got "
                f"{len(declared)} in model.yaml"
            )
        # Declared names that are the model's output names pick those; the other declared
        # outputs take the remaining ones in order (so `y` alone is `predict`).
        declared_names = {t.name for t in declared}
        remaining = iter([s for s in offered if s.name not in declared_names])
        by_name = {s.name: s for s in offered}
        chosen = [by_name.get(t.name) or next(remaining) for t in declared]
        self._sources = {t.name: s.name for t, s in zip(declared, chosen, strict=True)}
        return tuple(_check_output(t, s) for t, s in zip(declared, chosen, strict=True))


def _width(spec: TensorSpec) -> int:
    return spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else 1


def _check_input(tensor: TensorConfig, n_features: int | None) -> TensorSpec:
    spec = tensor.spec()
    where = f"input '{spec.name}'"
    if spec.datatype in ("BYTES", "BOOL"):
        raise SignatureProblem(f"{where} datatype: expected a numeric type, got {spec.datatype}")
    expected = (-1, n_features if n_features is not None else -1)
    one_column = len(spec.shape) == 1 and n_features in (1, None)
    if not one_column and merge_shape(expected, spec.shape) is None:
        raise SignatureProblem(
            f"{where} shape: expected {list(expected)} from the artifact ({n_features} "
            f"features), got {list(spec.shape)} in model.yaml"
        )
    return spec


def _check_output(tensor: TensorConfig, offered: TensorSpec) -> TensorSpec:
    spec = tensor.spec()
    where = f"output '{spec.name}' (the model's '{offered.name}')"
    if (spec.datatype == "BYTES") != (offered.datatype == "BYTES"):
        raise SignatureProblem(
            f"{where} datatype: expected {offered.datatype} from the model, got "
            f"{spec.datatype} in model.yaml"
        )
    shape = merge_shape(offered.shape, spec.shape)
    if shape is None:
        raise SignatureProblem(
            f"{where} shape: expected {list(offered.shape)} from the model, got "
            f"{list(spec.shape)} in model.yaml"
        )
    return TensorSpec(spec.name, spec.datatype, shape, spec.allow_nan)
