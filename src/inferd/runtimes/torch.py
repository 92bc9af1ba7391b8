"""PyTorch models: TorchScript (``model.pt``) and ``torch.export`` programs (``model.pt2``).

    Runtime (ABC)
    └── MeasuredRuntime
        └── _TorchRuntime            device, threads, inference_mode, tensors in and out
            ├── TorchScriptRuntime   torch.jit.load; input names from forward(), types from
            │                        model.yaml (TorchScript records no dtypes or shapes)
            └── TorchExportRuntime   torch.export.load; names, dtypes and shapes from the program

torch is an optional extra (``inferd[torch]``), imported only when a model is loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import InferenceFailed, ModelNotReady
from inferd.runtimes._device import check_fits, choose_device, gpu_index, out_of_memory
from inferd.runtimes._memory import LoadMeter, MeasuredRuntime
from inferd.runtimes._signature import SignatureProblem, cast_outputs, declared, merge
from inferd.runtimes.base import import_framework
from inferd.types import Signature, TensorSpec

logger = logging.getLogger(__name__)

_PARAMETERS = ("intra_op_threads", "compile", "compile_mode", "compile_backend")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# torch dtype names (str(torch.float32) == "torch.float32") -> V2 datatypes (FP32...).
_DATATYPES = {
    f"torch.{name}": name.upper().replace("FLOAT", "FP")
    for name in ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                 "int64", "float16", "float32", "float64")
}  # fmt: skip


class _TorchRuntime(MeasuredRuntime):
    """What TorchScript and torch.export share: placement, threads, calling, outputs.

    ``config.parameters.intra_op_threads`` (default 0: PyTorch's own choice) sets
    ``torch.set_num_threads`` in the thread that runs each batch. PyTorch's intra-op pool is
    per process, so models that set different values take turns with it.
    ``compile: true`` (torch.export programs) wraps the module in ``torch.compile`` with
    ``compile_mode`` and ``compile_backend``; it compiles on the first call, the warmup's.
    """

    platform = "torchscript"
    format_name = "TorchScript"
    compilable = False  # TorchScript is the JIT's already; torch.compile does not trace it

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._torch: Any = None
        self._module: Any = None
        self._signature: Signature | None = None
        self._arg_names: list[str] = []
        self._kwarg_names: list[str] = []
        self._threads = 0

    def load(self) -> None:
        """Read the artifact onto the chosen device and settle the signature.

        Raises:
            FrameworkMissing: torch is not installed.
            ConfigError: an unknown or invalid ``parameters`` entry.
            ModelLoadError: the file is missing, corrupt or of another format, the device is
                unavailable or too small, or model.yaml disagrees with the artifact.
        """
        torch = _import_torch(self.platform)
        self.check_parameters(_PARAMETERS)
        self._threads = self.int_parameter("intra_op_threads", 0)
        compile_options = self._compile_options(torch)
        if not self.artifact.is_file():
            problem = "is a folder, expected a file" if self.artifact.is_dir() else "not found"
            raise self.load_error(f"{self.artifact}: {problem}")
        device = self._place(torch)
        index = gpu_index(device)
        meter = LoadMeter(
            partial(torch.cuda.memory_allocated, index) if index is not None else None
        )
        with meter:
            module, source = self._read_guarded(torch, device)
        try:
            signature = self._read_signature(source)
        except SignatureProblem as err:
            raise self.load_error(f"{self.artifact}: {err}") from None
        if compile_options is not None:
            # dynamic: the batcher sends every batch size; one graph serves them all.
            module = torch.compile(module, dynamic=True, **compile_options)
        self._torch, self._module, self._signature, self.device = torch, module, signature, device
        self._usage = meter.usage(fallback=self.artifact.stat().st_size)

    def _compile_options(self, torch: Any) -> dict[str, str] | None:
        """``torch.compile`` arguments from ``parameters``; None when not compiling.

        Raises:
            ConfigError: a value of the wrong kind, an unknown mode or backend, or compiling a
                TorchScript module.
        """
        params = self.config.parameters
        wanted = params.get("compile", False)
        if not isinstance(wanted, bool):
            raise self.config_error("parameters.compile", f"expected true or false, got {wanted!r}")
        if not wanted:
            extra = sorted({"compile_mode", "compile_backend"} & set(params))
            if extra:
                raise self.config_error(f"parameters.{extra[0]}", "applies with compile: true")
            return None
        if not self.compilable:
            raise self.config_error(
                "parameters.compile",
                "torch.compile serves torch_export programs; TorchScript is compiled by its JIT",
            )
        mode = params.get("compile_mode", "default")
        if mode not in COMPILE_MODES:
            expected = ", ".join(COMPILE_MODES)
            raise self.config_error(
                "parameters.compile_mode", f"expected one of {expected}, got {mode!r}"
            )
        backend = params.get("compile_backend", "inductor")
        known = sorted({"inductor", *torch._dynamo.list_backends(exclude_tags=())})
        if backend not in known:
            raise self.config_error(
                "parameters.compile_backend", f"expected one of {', '.join(known)}, got {backend!r}"
            )
        return {"mode": mode, "backend": backend}

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch under ``torch.inference_mode``."""
        module, torch, signature = self._module, self._torch, self._signature
        if module is None or signature is None:
            raise ModelNotReady(self.config.name, self.model_version, "unloaded")
        if self._threads and torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        args = [self._tensor(inputs[name]) for name in self._arg_names]
        kwargs = {name: self._tensor(inputs[name]) for name in self._kwarg_names}
        with torch.inference_mode():
            result = module(*args, **kwargs)
            arrays = self._arrays(result, signature)
        return cast_outputs(arrays, signature.outputs)

    def unload(self) -> None:
        """Drop the module and give its host and device memory back."""
        torch, on_gpu = self._torch, self.device != "cpu"
        self._module = None
        self._released(collect=on_gpu)
        if torch is not None and on_gpu:
            torch.cuda.empty_cache()  # hand the freed blocks back to the driver

    def _place(self, torch: Any) -> str:
        if self.requested_device == "cpu":
            return "cpu"
        free: list[int | None] = []
        if torch.cuda.is_available():
            free = [int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())]
        device = choose_device(self, free, "PyTorch")
        index = gpu_index(device)
        if index is not None:
            check_fits(self, device, self.artifact.stat().st_size, free[index])
        return device

    def _read_guarded(self, torch: Any, device: str) -> tuple[Any, Any]:
        try:
            return self._read(torch, device)
        except (torch.OutOfMemoryError, MemoryError) as err:
            size = self.artifact.stat().st_size
            raise out_of_memory(self, device, size, detail=_first_line(err)) from err
        except Exception as err:  # torch raises RuntimeError, PickleError, zipfile errors...
            raise self.load_error(
                f"{self.artifact}: not a loadable {self.format_name} file ({_first_line(err)}); "
                "check that it was copied completely and saved with "
                f"{'torch.jit.save' if self.platform == 'torchscript' else 'torch.export.save'}"
            ) from err

    def _read(self, torch: Any, device: str) -> tuple[Any, Any]:
        """Load the artifact: (the callable module, what the signature is read from)."""
        raise NotImplementedError

    def _read_signature(self, source: Any) -> Signature:
        raise NotImplementedError

    def _tensor(self, array: np.ndarray) -> Any:
        # torch.from_numpy shares memory and warns on read-only arrays (decoded request
        # bodies are read-only views); a copy is cheaper than the warning machinery.
        if not array.flags.writeable or any(stride < 0 for stride in array.strides):
            array = np.array(array, copy=True)
        tensor = self._torch.from_numpy(array)
        return tensor if self.device == "cpu" else tensor.to(self.device)

    def _arrays(self, result: Any, signature: Signature) -> dict[str, np.ndarray]:
        names = [spec.name for spec in signature.outputs]
        if isinstance(result, self._torch.Tensor):
            values = [result]
        elif isinstance(result, Mapping):
            missing = [name for name in names if name not in result]
            if missing:
                raise self._output_error(f"a dict with keys {sorted(result)}", names)
            values = [result[name] for name in names]
        elif isinstance(result, tuple | list):
            values = list(result)
        else:
            raise self._output_error(type(result).__name__, names)
        if len(values) != len(names) or not all(isinstance(v, self._torch.Tensor) for v in values):
            raise self._output_error(f"{len(values)} values", names)
        return {
            name: value.detach().cpu().numpy() for name, value in zip(names, values, strict=True)
        }

    def _output_error(self, got: str, names: list[str]) -> InferenceFailed:
        return InferenceFailed(
            self.config.name,
            self.model_version,
            f"the model returned {got}; the signature has outputs {names}: return one tensor, "
            "a tuple of tensors in that order, or a dict keyed by those names",
        )


class TorchScriptRuntime(_TorchRuntime):
    """A TorchScript module (``torch.jit.save``) called with the declared inputs by name.

    TorchScript keeps ``forward``'s argument names but not dtypes or shapes, so model.yaml
    declares every input (named like ``forward``'s arguments) and output.
    """

    def _read(self, torch: Any, device: str) -> tuple[Any, Any]:
        module = torch.jit.load(str(self.artifact), map_location=device)
        module.eval()
        return module, module

    def _read_signature(self, source: Any) -> Signature:
        signature = declared(self.config, f"the TorchScript file {self.artifact.name}")
        arguments = list(source.forward.schema.arguments)[1:]  # [0] is self
        names = [arg.name for arg in arguments]
        required = [arg.name for arg in arguments if not arg.has_default_value()]
        declared_names = [spec.name for spec in signature.inputs]
        unknown = [name for name in declared_names if name not in names]
        missing = [name for name in required if name not in declared_names]
        if unknown or missing:
            raise SignatureProblem(
                f"inputs: expected forward()'s arguments {names} (required: {required}) from "
                f"the artifact, got {declared_names} in model.yaml; name the inputs in "
                "model.yaml like forward()'s arguments"
            )
        _refuse_bytes(signature.inputs + signature.outputs)
        self._kwarg_names = declared_names
        return signature


class TorchExportRuntime(_TorchRuntime):
    """A ``torch.export`` program (``torch.export.save``); the program is its own signature.

    Inputs keep the exported argument names. Outputs are named by the keys when ``forward``
    returns a dict, else ``output__0``, ``output__1``, ... unless model.yaml names them (in
    order). Export with a dynamic first dimension
    (``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``) so the batcher can batch.
    """

    platform = "torch_export"
    format_name = "torch.export"
    compilable = True

    def _read(self, torch: Any, device: str) -> tuple[Any, Any]:
        program = torch.export.load(str(self.artifact))
        if device != "cpu":
            passes = import_framework("torch.export.passes", self.platform, "torch")
            program = passes.move_to_device_pass(program, device)
        return program.module(), program

    def _read_signature(self, source: Any) -> Signature:
        program = source
        args_spec, kwargs_spec = program.call_spec.in_spec.children()
        if not all(child.is_leaf() for child in (*args_spec.children(), *kwargs_spec.children())):
            raise SignatureProblem(
                "inputs: nested inputs (lists, dicts) are not served; "
                "export a forward() that takes tensors"
            )
        values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
        user_inputs = list(program.graph_signature.user_inputs)
        specs = [_spec(name, values[name], "input") for name in user_inputs]
        self._arg_names = user_inputs[: args_spec.num_leaves]
        self._kwarg_names = list(kwargs_spec.context or [])
        outputs = _export_outputs(program)
        inputs = merge(specs, self.config.inputs, "input")
        by_position = all(spec.name.startswith("output__") for spec in outputs)
        merged = merge(outputs, self.config.outputs, "output", by_position=by_position)
        if self.config.batching_enabled and any(s.shape and s.shape[0] != -1 for s in inputs):
            logger.warning(
                "model %s: %s has a fixed first dimension, so requests cannot be batched; export "
                "with dynamic_shapes={name: {0: torch.export.Dim('batch')}}",
                self.config.name, self.artifact,
            )  # fmt: skip
        return Signature(inputs, merged)


def _export_outputs(program: Any) -> list[TensorSpec]:
    output = next(n for n in program.graph.nodes if n.op == "output")
    kinds = [spec.kind.name for spec in program.graph_signature.output_specs]
    values = [
        arg.meta.get("val") for arg, kind in zip(output.args[0], kinds, strict=True)
        if kind == "USER_OUTPUT"
    ]  # fmt: skip
    out_spec = program.call_spec.out_spec
    if out_spec.type is dict and len(out_spec.context) == len(values):
        names = [str(key) for key in out_spec.context]
    else:
        names = [f"output__{i}" for i in range(len(values))]
    return [_spec(name, value, "output") for name, value in zip(names, values, strict=True)]


def _spec(name: str, value: Any, kind: str) -> TensorSpec:
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        raise SignatureProblem(f"{kind} '{name}' is {type(value).__name__}, not a tensor")
    datatype = _DATATYPES.get(str(dtype))
    if datatype is None:
        raise SignatureProblem(f"{kind} '{name}' has dtype {dtype}, which inferd cannot serve")
    # Symbolic sizes (SymInt) are the dynamic dimensions.
    shape = tuple(dim if isinstance(dim, int) else -1 for dim in value.shape)
    return TensorSpec(name, datatype, shape)


def _refuse_bytes(specs: tuple[TensorSpec, ...]) -> None:
    for spec in specs:
        if spec.datatype == "BYTES":
            raise SignatureProblem(
                f"tensor '{spec.name}' datatype: expected a numeric type for a torch tensor, "
                "got BYTES in model.yaml; use the python platform for text"
            )


def _import_torch(platform: str) -> Any:
    torch = import_framework("torch", platform, "torch")
    import_framework("torch.export", platform, "torch")  # not imported by `import torch`
    if platform == "torch_export":
        # torch.export.load imports ~80 MB of code on first use; import it before the load is
        # measured so the first program's memory_bytes is not inflated by it.
        with contextlib.suppress(ImportError):
            importlib.import_module("torch._export.serde.serialize")
    return torch


def _first_line(err: BaseException) -> str:
    # torch's messages run to paragraphs of advice; the first sentence says what failed.
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else type(err).__name__
    return first.split(". ")[0][:300]
