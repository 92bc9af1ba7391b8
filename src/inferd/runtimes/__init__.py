"""Framework runtimes behind one ABC; each framework module is imported only when needed."""

from __future__ import annotations

import importlib

from inferd.errors import ConfigError
from inferd.runtimes.base import Runtime, synthetic_input

# platform -> (module, class name, optional extra that provides the framework)
_RUNTIMES: dict[str, tuple[str, str, str]] = {
    "onnx": ("inferd.runtimes.onnx", "OnnxRuntime", "onnx"),
    "torchscript": ("inferd.runtimes.torch", "TorchScriptRuntime", "torch"),
    "torch_export": ("inferd.runtimes.torch", "TorchExportRuntime", "torch"),
    "tensorflow": ("inferd.runtimes.tensorflow", "TensorFlowRuntime", "tensorflow"),
    "sklearn": ("inferd.runtimes.sklearn", "SklearnRuntime", "sklearn"),
    "xgboost": ("inferd.runtimes.xgboost", "XGBoostRuntime", "xgboost"),
    "lightgbm": ("inferd.runtimes.lightgbm", "LightGBMRuntime", "lightgbm"),
    "python": ("inferd.runtimes.python", "PythonRuntime", "python"),
    "transformers": ("inferd.runtimes.transformers", "TransformersRuntime", "generative"),
    "vllm": ("inferd.runtimes.vllm", "VllmRuntime", "vllm"),
}


def runtime_class(platform: str) -> type[Runtime]:
    """Return the runtime class for a platform, importing its module on first use.

    Raises:
        ConfigError: no runtime serves this platform yet.
    """
    try:
        module_name, class_name, _extra = _RUNTIMES[platform]
    except KeyError:
        raise ConfigError(
            "model.yaml",
            "platform",
            f"no runtime for '{platform}' in this build; available: {', '.join(sorted(_RUNTIMES))}",
        ) from None
    cls: type[Runtime] = getattr(importlib.import_module(module_name), class_name)
    return cls


__all__ = ["Runtime", "runtime_class", "synthetic_input"]
