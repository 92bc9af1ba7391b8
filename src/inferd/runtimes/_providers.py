"""ONNX Runtime execution providers chosen in model.yaml: ``parameters.execution_providers``.

    parameters:
      execution_providers:
        - tensorrt: {trt_fp16_enable: true, trt_engine_cache_enable: true,
                     trt_engine_cache_path: /var/cache/trt}
        - cuda: {cudnn_conv_algo_search: HEURISTIC}
        - cpu

In order of preference, each a name (``tensorrt``, ``cuda``, ``cpu``, or onnxruntime's own
``TensorrtExecutionProvider``...) or a one-key mapping from the name to its options. The list
is checked when the model loads (names, option names and their types), and errors name the
entry. A provider this onnxruntime build lacks (a CPU-only wheel has neither TensorRT nor
CUDA) is left out with a logged warning, and the next one serves; the CPU provider is always
last, as onnxruntime runs there what the others cannot. With ``device: cuda:N`` the GPU
providers get ``device_id: N`` unless their options say otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferd.errors import ConfigError

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
NAMES = {"tensorrt": TENSORRT, "cuda": CUDA, "cpu": CPU}
GPU = (TENSORRT, CUDA)
_B, _I, _S = bool, int, str
# Options checked by name and type; onnxruntime takes each as a string.
OPTIONS: dict[str, dict[str, type]] = {
    TENSORRT: {"device_id": _I, "trt_fp16_enable": _B, "trt_int8_enable": _B,
               "trt_max_workspace_size": _I, "trt_engine_cache_enable": _B,
               "trt_engine_cache_path": _S, "trt_timing_cache_enable": _B,
               "trt_builder_optimization_level": _I, "trt_max_partition_iterations": _I,
               "trt_min_subgraph_size": _I},
    CUDA: {"device_id": _I, "gpu_mem_limit": _I, "arena_extend_strategy": _S,
           "cudnn_conv_algo_search": _S, "do_copy_in_default_stream": _B,
           "enable_cuda_graph": _B, "use_tf32": _B},
    CPU: {},
}  # fmt: skip
_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
_ARENA = ("kNextPowerOfTwo", "kSameAsRequested")


@dataclass(frozen=True)
class Provider:
    """One requested provider: onnxruntime's name and its checked options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


def parse(value: Any, source: str = "model.yaml") -> list[Provider]:
    """The providers model.yaml asks for, checked.

    Args:
        value: ``parameters.execution_providers`` as read from the YAML.
        source: the file named in errors, e.g. ``model.yaml of resnet``.

    Raises:
        ConfigError: naming the entry, what was expected and what came.
    """
    try:
        return _parse(value, "parameters.execution_providers")
    except ConfigError as err:
        raise ConfigError(source, err.field, err.message.split("': ", 1)[1]) from None


def _parse(value: Any, where: str) -> list[Provider]:
    if not isinstance(value, list) or not value:
        raise _error(where, "a non-empty list of providers (tensorrt, cuda, cpu)", value)
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        name: Any
        options: Any = {}
        if isinstance(item, str):
            name = item
        elif isinstance(item, dict) and len(item) == 1:
            name, options = next(iter(item.items()))
            options = {} if options is None else options
        else:
            raise _error(at, "a provider name, or one name mapped to its options", item)
        provider = _name(at, name)
        out.append(Provider(provider, _options(at, provider, options)))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise _error(where, "each provider once", names)
    return out


def _name(at: str, name: Any) -> str:
    if isinstance(name, str):
        if name.lower() in NAMES:
            return NAMES[name.lower()]
        if name in OPTIONS:
            return name
    raise _error(at, f"one of {', '.join(NAMES)} (or {', '.join(OPTIONS)})", name)


def _options(at: str, provider: str, options: Any) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise _error(at, "a mapping of option names to values", options)
    known = OPTIONS[provider]
    for key, value in options.items():
        if key not in known:
            expected = ", ".join(known) or "no options"
            raise _error(f"{at}.{key}", f"an option of {provider}: {expected}", key)
        kind = known[key]
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise _error(f"{at}.{key}", f"a {kind.__name__}", value)
    for key, allowed in (("cudnn_conv_algo_search", _ALGO_SEARCH),
                         ("arena_extend_strategy", _ARENA)):  # fmt: skip
        if key in options and options[key] not in allowed:
            raise _error(f"{at}.{key}", f"one of {', '.join(allowed)}", options[key])
    return dict(options)


def _error(field: str, expected: str, got: Any) -> ConfigError:
    return ConfigError("model.yaml", field, f"expected {expected}, got {got!r}")


Chosen = list[tuple[str, dict[str, str]]]


def resolve(
    requested: Sequence[Provider], available: Sequence[str], device_id: int | None
) -> tuple[Chosen, list[str]]:
    """The providers to hand onnxruntime, and the requested ones this build lacks.

    Args:
        requested: from :func:`parse`, in order of preference.
        available: ``onnxruntime.get_available_providers()``.
        device_id: the GPU of ``device: cuda:N``; None for ``auto``.

    Returns:
        (name, options as strings) in order, the CPU provider last; the names left out.
    """
    chosen: Chosen = []
    missing: list[str] = []
    for provider in requested:
        if provider.name not in available:
            missing.append(provider.name)
            continue
        options = dict(provider.options)
        if provider.name in GPU and device_id is not None:
            options.setdefault("device_id", device_id)
        chosen.append((provider.name, {k: _text(v) for k, v in options.items()}))
    if CPU not in [name for name, _ in chosen]:
        chosen.append((CPU, {}))
    return chosen, missing


def _text(value: Any) -> str:
    # onnxruntime parses "True"/"False" and digits for its boolean and integer options.
    return str(value)
