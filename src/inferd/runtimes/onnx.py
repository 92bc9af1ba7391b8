"""ONNX models on onnxruntime.

    Runtime (ABC)
    └── OnnxRuntime

onnxruntime is an optional extra (``inferd[onnx]``), imported only when a model is loaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import ConfigError, FrameworkMissing, InvalidInput, ModelLoadError, ModelNotReady
from inferd.runtimes import _providers
from inferd.runtimes._device import visible_free_bytes
from inferd.runtimes._memory import COLLECT_ABOVE_BYTES, release_host_memory, rss_bytes
from inferd.runtimes._signature import SignatureProblem, merge
from inferd.runtimes.base import MemoryUsage, Runtime
from inferd.types import DATATYPE_TO_DTYPE, Signature, TensorSpec

# onnxruntime's NodeArg.type strings -> V2 datatypes. ONNX names its element types like numpy
# does, except float, double and string.
_ORT_TO_DATATYPE: dict[str, str] = {
    f"tensor({dtype.name})": datatype
    for datatype, dtype in DATATYPE_TO_DTYPE.items()
    if datatype not in ("FP32", "FP64", "BYTES")
} | {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(string)": "BYTES"}
_OPTIMIZATION_LEVELS: dict[str, str] = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_PARAMETERS = ("intra_op_threads", "inter_op_threads", "graph_optimization_level",
               "execution_providers")  # fmt: skip
logger = logging.getLogger(__name__)
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_CUDA_DEVICE = re.compile(r"cuda(?::(\d+))?")


class OnnxRuntime(Runtime):
    """Runs an ONNX model with onnxruntime on the CPU or one CUDA device.

    ``config.parameters`` may set ``intra_op_threads`` (default 1), ``inter_op_threads``
    (default 1) and ``graph_optimization_level`` (``all``, ``extended``, ``basic``,
    ``disabled``). One thread per call is the default because the batcher already runs
    ``instances`` calls at once and a host may run several server processes.
    ``execution_providers`` chooses TensorRT, CUDA and CPU with their options
    (:mod:`inferd.runtimes._providers`); without it, ``device`` picks CUDA or the CPU.
    """

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._session: Any = None
        self._signature: Signature | None = None
        self._output_names: list[str] = []
        self._bytes_inputs: tuple[str, ...] = ()
        self._bytes_outputs: tuple[int, ...] = ()
        self._memory: int | None = None
        self._device_memory = 0

    @property
    def _version(self) -> str:
        # Runtimes are not told their version; the artifact sits in <model>/<version>/.
        return self.artifact.parent.name

    def load(self) -> None:
        """Create the inference session and read the signature from the graph.

        Raises:
            FrameworkMissing: onnxruntime is not installed.
            ConfigError: a ``parameters`` entry or the device is invalid.
            ModelLoadError: the file is missing or corrupt, the device is unavailable, or the
                graph does not match the declared inputs/outputs.
        """
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise FrameworkMissing("onnx", "onnx", err) from err
        options = self._session_options(ort)
        providers, cuda_id = self._providers(ort)
        before, gpu_before = rss_bytes(), _gpu_free(cuda_id)
        session = self._create_session(ort, options, providers)
        after, gpu_after = rss_bytes(), _gpu_free(cuda_id)
        if gpu_before is not None and gpu_after is not None:
            # onnxruntime cannot say what its CUDA arena holds: the GPU's free memory drop
            # while the session was created stands in (other processes on the GPU sway it).
            self._device_memory = max(gpu_before - gpu_after, 0)
        self.device = self._placement(session, cuda_id)
        try:
            signature = Signature(
                merge(_graph_specs(session.get_inputs()), self.config.inputs, "input"),
                merge(_graph_specs(session.get_outputs()), self.config.outputs, "output"),
            )
        except SignatureProblem as err:
            raise ModelLoadError(self.config.name, self._version, str(err)) from None
        self._signature = signature
        self._output_names = [spec.name for spec in signature.outputs]
        self._bytes_inputs = tuple(s.name for s in signature.inputs if s.datatype == "BYTES")
        bytes_outputs = [i for i, s in enumerate(signature.outputs) if s.datatype == "BYTES"]
        self._bytes_outputs = tuple(bytes_outputs)
        delta = after - before if before is not None and after is not None else 0
        self._memory = delta if delta > 0 else super().memory_bytes()
        self._session = session

    def signature(self) -> Signature:
        """The model's inputs and outputs; declared config wins where it is more specific."""
        if self._signature is None:
            raise ModelNotReady(self.config.name, self._version, "not loaded")
        return self._signature

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch through the session."""
        session = self._session
        if session is None:
            raise ModelNotReady(self.config.name, self._version, "unloaded")
        feed = dict(inputs)
        for name in self._bytes_inputs:
            if name in feed:
                feed[name] = _to_text(name, feed[name])
        outputs = session.run(self._output_names, feed)
        for index in self._bytes_outputs:
            outputs[index] = _to_bytes(outputs[index])
        return dict(zip(self._output_names, outputs, strict=True))

    def memory_usage(self) -> MemoryUsage:
        """Host: process RSS growth while the session was created (the file size if
        unmeasurable); device: the GPU's free memory drop meanwhile (NVML), 0 on the CPU."""
        host = super().memory_bytes() if self._memory is None else self._memory
        return MemoryUsage(host_bytes=host, device_bytes=self._device_memory)

    def memory_bytes(self) -> int:
        return self.memory_usage().total

    def unload(self) -> None:
        """Drop the session so onnxruntime frees its memory."""
        held = self.memory_bytes()
        self._session = None
        self._memory = self._device_memory = 0
        release_host_memory(collect=held >= COLLECT_ABOVE_BYTES)

    def _config_error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"model.yaml of {self.config.name}", key, problem)

    def _session_options(self, ort: Any) -> Any:
        params = self.config.parameters
        unknown = sorted(set(params) - set(_PARAMETERS))
        if unknown:
            raise self._config_error(
                f"parameters.{unknown[0]}",
                f"unknown onnx parameter; expected one of {', '.join(_PARAMETERS)}",
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._thread_count("intra_op_threads")
        options.inter_op_num_threads = self._thread_count("inter_op_threads")
        level = params.get("graph_optimization_level", "all")
        if not isinstance(level, str) or level.lower() not in _OPTIMIZATION_LEVELS:
            raise self._config_error(
                "parameters.graph_optimization_level",
                f"expected one of {', '.join(_OPTIMIZATION_LEVELS)}, got {level!r}",
            )
        level_name = _OPTIMIZATION_LEVELS[level.lower()]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level_name)
        return options

    def _thread_count(self, key: str) -> int:
        value = self.config.parameters.get(key, 1)
        # bool is an int subclass; `true` in YAML is a typo here, not a thread count.
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._config_error(
                f"parameters.{key}",
                f"expected an integer >= 0 (0 lets onnxruntime use every core), got {value!r}",
            )
        return value

    def _providers(self, ort: Any) -> tuple[list[Any], int | None]:
        requested = self.requested_device
        match = _CUDA_DEVICE.fullmatch(requested)
        if match is None and requested not in ("auto", "cpu"):
            raise self._config_error("device", f"expected auto, cpu or cuda:N, got {requested!r}")
        available = ort.get_available_providers()
        if "execution_providers" in self.config.parameters:
            index = int(match.group(1) or 0) if match is not None else None
            return self._chosen_providers(available, index)
        if requested == "cpu" or (requested == "auto" and _CUDA not in available):
            return [_CPU], None
        if _CUDA not in available:
            raise ModelLoadError(
                self.config.name,
                self._version,
                f"device '{requested}' requested but onnxruntime has no {_CUDA} "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or set device: cpu",
            )
        device_id = int(match.group(1) or 0) if match is not None else _most_free_gpu()
        # CPU stays in the list so ops without a CUDA kernel still run.
        return [(_CUDA, {"device_id": device_id}), _CPU], device_id

    def _chosen_providers(
        self, available: list[str], device_id: int | None
    ) -> tuple[list[Any], int | None]:
        """``parameters.execution_providers``, less what this build lacks (with a warning)."""
        wanted = _providers.parse(self.config.parameters["execution_providers"],
                                  f"model.yaml of {self.config.name}")  # fmt: skip
        gpu = [p.name for p in wanted if p.name in _providers.GPU]
        if self.requested_device == "cpu" and gpu:
            raise self._config_error(
                "parameters.execution_providers", f"CPU providers only with device: cpu, got "
                f"{', '.join(gpu)}; set device: auto or cuda:N, or drop them",
            )  # fmt: skip
        chosen, missing = _providers.resolve(wanted, available, device_id)
        if missing:
            logger.warning(
                "model %s: execution provider(s) %s not in this onnxruntime build (available: "
                "%s); using %s", self.config.name, ", ".join(missing), ", ".join(available),
                ", ".join(name for name, _ in chosen),
            )  # fmt: skip
        first = chosen[0]
        if first[0] not in _providers.GPU:
            if self.requested_device.startswith("cuda"):
                raise ModelLoadError(self.config.name, self._version,
                                     f"device '{self.requested_device}' requested but no GPU "
                                     f"provider of {', '.join(gpu) or 'none'} is available "
                                     f"(available: {', '.join(available)})")  # fmt: skip
            return list(chosen), None
        gpu_id = int(first[1].get("device_id", device_id if device_id is not None else 0))
        return list(chosen), gpu_id

    def _create_session(self, ort: Any, options: Any, providers: list[Any]) -> Any:
        path = self.artifact
        if not path.is_file():
            problem = "is a folder, expected an .onnx file" if path.is_dir() else "file not found"
            raise ModelLoadError(self.config.name, self._version, f"{path}: {problem}")
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own classes: InvalidProtobuf, Fail, ...
            raise ModelLoadError(
                self.config.name,
                self._version,
                f"{path}: not a loadable ONNX model ({err}); "
                "check that the file was copied completely or re-export it",
            ) from err

    def _placement(self, session: Any, cuda_id: int | None) -> str:
        started = session.get_providers()
        if cuda_id is not None and any(p in started for p in _providers.GPU):
            return f"cuda:{cuda_id}"
        if cuda_id is None or self.requested_device == "auto":
            return "cpu"
        # onnxruntime falls back to the CPU with only a log line when CUDA fails to start.
        raise ModelLoadError(
            self.config.name,
            self._version,
            f"device '{self.requested_device}' requested but onnxruntime could not start "
            "CUDA (check the driver and CUDA/cuDNN libraries) or set device: cpu",
        )


def _graph_specs(args: Sequence[Any]) -> list[TensorSpec]:
    specs = []
    for arg in args:
        datatype = _ORT_TO_DATATYPE.get(arg.type)
        if datatype is None:
            raise SignatureProblem(
                f"tensor '{arg.name}' has type {arg.type}, which inferd cannot serve; export "
                "plain tensors (for skl2onnx classifiers: options={'zipmap': False})"
            )
        # Symbolic names ('batch'), None and non-positive dims are all dynamic.
        shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape or ())
        specs.append(TensorSpec(arg.name, datatype, shape))
    return specs


def _gpu_free(index: int | None) -> int | None:
    """Free bytes of GPU ``index`` (NVML); None for the CPU or when unknown."""
    if index is None:
        return None
    free = visible_free_bytes()
    return free[index] if index < len(free) else None


def _most_free_gpu() -> int:
    # auto: the GPU with the most free memory (NVML), the first one when that is unknown.
    free = visible_free_bytes()
    known = [(f, -i) for i, f in enumerate(free) if f is not None]
    return -max(known)[1] if known else 0


def _to_text(name: str, array: np.ndarray) -> np.ndarray:
    # V2 BYTES tensors hold bytes; onnxruntime's string tensors take Python str.
    if array.dtype.kind == "U":
        return array
    try:
        items = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.ravel()]
    except UnicodeDecodeError:
        raise InvalidInput(f"input '{name}'", "UTF-8 text", "bytes that are not UTF-8") from None
    return np.array(items, dtype=np.object_).reshape(array.shape)


def _to_bytes(array: np.ndarray) -> np.ndarray:
    items = [v.encode("utf-8") if isinstance(v, str) else v for v in array.ravel()]
    return np.array(items, dtype=np.object_).reshape(array.shape)
