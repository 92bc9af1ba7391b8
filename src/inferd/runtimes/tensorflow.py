"""TensorFlow SavedModels (``model.savedmodel/``), served through one signature.

    Runtime (ABC)
    └── MeasuredRuntime
        └── TensorFlowRuntime

The ``serving_default`` signature (or ``parameters.signature_name``) gives the input and
output names, dtypes and shapes; model.yaml may refine them. GPU memory growth is switched on
before TensorFlow touches a GPU, so one model does not reserve the whole card.

tensorflow is an optional extra (``inferd[tensorflow]``), imported on load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import ModelNotReady
from inferd.runtimes._device import (
    check_fits,
    choose_device,
    gpu_index,
    out_of_memory,
    visible_free_bytes,
)
from inferd.runtimes._memory import LoadMeter, MeasuredRuntime
from inferd.runtimes._signature import SignatureProblem, datatype_for, merge
from inferd.runtimes.base import import_framework
from inferd.types import Signature, TensorSpec

logger = logging.getLogger(__name__)

_PARAMETERS = ("signature_name", "intra_op_threads", "inter_op_threads")
_configured = threading.Lock()
_process_threads: tuple[int, int] | None = None  # (intra, inter) once configured


class TensorFlowRuntime(MeasuredRuntime):
    """Calls one signature of a SavedModel with the inputs as keyword arguments.

    ``parameters``: ``signature_name`` (default ``serving_default``); ``intra_op_threads`` and
    ``inter_op_threads`` (default 0: TensorFlow's choice) are per process in TensorFlow and
    only take effect when set by the first TensorFlow model loaded.
    """

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._tf: Any = None
        self._loaded: Any = None
        self._function: Any = None
        self._signature: Signature | None = None
        self._tf_device = "/CPU:0"

    def load(self) -> None:
        """Load the SavedModel on the chosen device and read its signature.

        Raises:
            FrameworkMissing: tensorflow is not installed.
            ConfigError: an unknown or invalid ``parameters`` entry.
            ModelLoadError: the folder is missing or not a SavedModel, the signature is
                absent or disagrees with model.yaml, or the device is unavailable or full.
        """
        tf = import_framework("tensorflow", "tensorflow", "tensorflow")
        self.check_parameters(_PARAMETERS)
        name = self.config.parameters.get("signature_name", "serving_default")
        _configure_process(tf, self.int_parameter("intra_op_threads", 0),
                           self.int_parameter("inter_op_threads", 0))  # fmt: skip
        self._check_folder()
        self.device = self._place(tf)
        index = gpu_index(self.device)
        self._tf_device = "/CPU:0" if index is None else f"/GPU:{index}"
        meter = LoadMeter(None if index is None else lambda: _gpu_bytes(tf, index))
        with meter:
            loaded = self._read(tf)
        function = loaded.signatures.get(name)
        if function is None:
            raise self.load_error(
                f"{self.artifact}: has no signature '{name}' (it has "
                f"{sorted(loaded.signatures.keys())}); set parameters.signature_name"
            )
        try:
            signature = self._read_signature(function)
        except SignatureProblem as err:
            raise self.load_error(f"{self.artifact}: {err}") from None
        self._tf, self._loaded, self._function, self._signature = tf, loaded, function, signature
        self._usage = meter.usage(fallback=self._artifact_bytes())

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature function on one batch."""
        function, tf, signature = self._function, self._tf, self._signature
        if function is None or signature is None:
            raise ModelNotReady(self.config.name, self.model_version, "unloaded")
        with tf.device(self._tf_device):
            feed = {spec.name: tf.constant(inputs[spec.name]) for spec in signature.inputs}
            result = function(**feed)
        return {spec.name: result[spec.name].numpy() for spec in signature.outputs}

    def unload(self) -> None:
        """Drop the SavedModel's objects so TensorFlow frees their variables."""
        self._function = None
        self._loaded = None
        self._released(collect=self.device != "cpu")

    def _check_folder(self) -> None:
        path = self.artifact
        if not path.is_dir():
            problem = "is a file" if path.exists() else "not found"
            raise self.load_error(
                f"{path}: {problem}, expected a SavedModel folder (tf.saved_model.save)"
            )
        if not any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
            raise self.load_error(
                f"{path}: no saved_model.pb inside, so it is not a SavedModel folder; save the "
                "model with tf.saved_model.save (or Keras model.export)"
            )

    def _place(self, tf: Any) -> str:
        if self.requested_device == "cpu":
            return "cpu"
        gpus = tf.config.list_physical_devices("GPU")
        free = visible_free_bytes(len(gpus)) if gpus else []
        device = choose_device(self, free, "TensorFlow")
        index = gpu_index(device)
        if index is not None:
            check_fits(self, device, self._artifact_bytes(), free[index])
        return device

    def _read(self, tf: Any) -> Any:
        try:
            with tf.device(self._tf_device):
                return tf.saved_model.load(str(self.artifact))
        except (tf.errors.ResourceExhaustedError, MemoryError) as err:
            detail = str(err).strip().splitlines()
            raise out_of_memory(self, self.device, self._artifact_bytes(),
                                detail=detail[0][:300] if detail else "") from err  # fmt: skip
        except Exception as err:  # DecodeError, NotFoundError, OSError, ValueError...
            detail = str(err).strip().splitlines()
            raise self.load_error(
                f"{self.artifact}: not a loadable SavedModel ({type(err).__name__}: "
                f"{detail[0][:300] if detail else ''}); check that the folder was copied "
                "completely"
            ) from err

    def _read_signature(self, function: Any) -> Signature:
        # SavedModel signatures are protobuf maps, whose order is not kept: sort by name.
        _, kwargs = function.structured_input_signature
        inputs = [_spec(name, spec, "input") for name, spec in sorted(kwargs.items())]
        outputs = function.structured_outputs
        if not isinstance(outputs, Mapping):
            raise SignatureProblem("the signature's outputs are not named; re-save it with a dict")
        out_specs = [_spec(name, spec, "output") for name, spec in sorted(outputs.items())]
        return Signature(
            merge(inputs, self.config.inputs, "input"),
            merge(out_specs, self.config.outputs, "output"),
        )

    def _artifact_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.artifact.rglob("*") if p.is_file())


def _spec(name: str, spec: Any, kind: str) -> TensorSpec:
    dtype = spec.dtype
    datatype = "BYTES" if dtype.name == "string" else datatype_for(
        dtype.as_numpy_dtype, f"{kind} '{name}'"
    )  # fmt: skip
    dims = spec.shape.as_list() if spec.shape.rank is not None else []
    return TensorSpec(str(name), datatype, tuple(-1 if d is None else int(d) for d in dims))


def _gpu_bytes(tf: Any, index: int) -> int:
    return int(tf.config.experimental.get_memory_info(f"GPU:{index}")["current"])


def _configure_process(tf: Any, intra: int, inter: int) -> None:
    """Once per process: GPU memory growth and thread pools, before TensorFlow starts them."""
    global _process_threads
    with _configured:
        if _process_threads is not None:
            if (intra or inter) and (intra, inter) != _process_threads:
                logger.warning(
                    "TensorFlow thread pools are per process and already set to %s "
                    "(intra, inter); ignoring %s", _process_threads, (intra, inter),
                )  # fmt: skip
            return
        _process_threads = (intra, inter)
        try:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
            if intra:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if inter:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError as err:  # TensorFlow was already started by someone else
            logger.warning("TensorFlow already initialised; memory growth/threads unchanged: %s",
                           err)  # fmt: skip
