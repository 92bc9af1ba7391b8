"""Triton model repositories: a ``config.pbtxt`` read as if it were a ``model.yaml``.

The file is parsed with protobuf's text format against Triton's ``ModelConfig`` schema, so a
misspelt field fails with its line and column. Fields inferd understands are translated
(:func:`translate`); fields Triton knows that do not change results here (``optimization``,
``model_warmup``...) are logged as ignored; fields whose meaning inferd cannot honour
(``sequence_batching``, ``ensemble_scheduling``, ``reshape``...) fail the model's load with a
message naming the field. Nothing is silently dropped.

Datatypes become V2 names (``TYPE_FP32`` -> ``FP32``, ``TYPE_STRING`` -> ``BYTES``), and with
``max_batch_size > 0`` the batch dimension (-1) is put in front of ``dims``, as ``model.yaml``
shapes carry it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inferd.config import ModelConfig, parse_model_config
from inferd.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"

# Triton platform or backend -> inferd platform.
PLATFORMS = {
    "onnxruntime_onnx": "onnx",
    "onnxruntime": "onnx",
    "pytorch_libtorch": "torchscript",
    "pytorch": "torchscript",
    "tensorflow_savedmodel": "tensorflow",
    "tensorflow": "tensorflow",
    "python": "python",
}
# Known to Triton, no effect on what inferd computes: reported in the log, then ignored.
IGNORED = frozenset({
    "optimization", "model_warmup", "response_cache", "model_metrics", "metric_tags",
    "model_repository_agents", "cc_model_filenames", "runtime",
})  # fmt: skip
# Translated by this module.
TRANSLATED = frozenset({
    "name", "platform", "backend", "max_batch_size", "input", "output", "dynamic_batching",
    "instance_group", "version_policy", "parameters", "default_model_filename",
    "model_transaction_policy",
})  # fmt: skip
_TENSOR_IGNORED = frozenset({"format", "label_filename", "is_non_linear_format_io"})
_BATCHING_KEYS = frozenset({
    "preferred_batch_size", "max_queue_delay_microseconds", "preserve_ordering",
    "priority_levels", "default_priority_level", "default_queue_policy",
})  # fmt: skip
_ARTIFACTS = {
    "onnx": "model.onnx", "torchscript": "model.pt", "tensorflow": "model.savedmodel",
    "python": "model.py",
}  # fmt: skip


def load_triton_config(path: Path, default_name: str) -> ModelConfig:
    """Read a ``config.pbtxt`` into a :class:`ModelConfig`.

    Raises:
        ConfigError: naming the file, the field and the fix.
    """
    from google.protobuf import json_format, text_format

    from inferd.protocol._gen import model_config_pb2

    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        message = text_format.Parse(text, model_config_pb2.ModelConfig())
    except OSError as err:
        raise ConfigError(source, "(file)", f"cannot read: {err}") from err
    except text_format.ParseError as err:
        raise ConfigError(source, "(file)", f"not a valid Triton model config: {err}") from err
    doc = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return parse_model_config(translate(doc, source), source, default_name)


def translate(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """Turn a Triton config (protobuf's JSON mapping) into a ``model.yaml`` mapping.

    Raises:
        ConfigError: a field inferd cannot honour.
    """
    for key in sorted(set(doc) - TRANSLATED):
        if key not in IGNORED:
            raise ConfigError(source, key, "not supported by inferd; remove it")
        logger.warning("%s: field '%s' has no effect in inferd; ignored", source, key)
    platform = _platform(doc, source)
    batch = int(doc.get("max_batch_size", 0))
    out: dict[str, Any] = {"platform": platform, "max_batch_size": batch}
    if "name" in doc:
        out["name"] = doc["name"]
    for kind, key in (("inputs", "input"), ("outputs", "output")):
        tensors = enumerate(doc.get(key, []))
        out[kind] = [_tensor(t, batch, f"{key}[{i}]", source) for i, t in tensors]
    if batch > 0:
        out["batching"] = _batching(doc.get("dynamic_batching"), source)
    out.update(_instances(doc.get("instance_group", []), source))
    if "version_policy" in doc:
        out["version_policy"] = _version_policy(doc["version_policy"])
    if "parameters" in doc:
        params = doc["parameters"].items()
        out["parameters"] = {k: _scalar(v.get("string_value", "")) for k, v in params}
    _check_filename(doc.get("default_model_filename"), platform, source)
    if doc.get("model_transaction_policy", {}).get("decoupled"):
        raise ConfigError(
            source, "model_transaction_policy.decoupled", "decoupled models are not supported"
        )
    return out


def _platform(doc: dict[str, Any], source: str) -> str:
    names = [doc[k] for k in ("platform", "backend") if doc.get(k)]
    if not names:
        raise ConfigError(source, "platform", "missing; set platform or backend")
    for name in names:
        if name in PLATFORMS:
            return PLATFORMS[name]
    choices = ", ".join(sorted(PLATFORMS))
    raise ConfigError(source, "platform", f"expected one of {choices}, got {' / '.join(names)}")


def _tensor(tensor: dict[str, Any], batch: int, where: str, source: str) -> dict[str, Any]:
    for key in tensor:
        if key in _TENSOR_IGNORED:
            logger.warning("%s: field '%s.%s' has no effect in inferd; ignored", source, where, key)
        elif key not in ("name", "data_type", "dims"):
            raise ConfigError(source, f"{where}.{key}", "not supported by inferd; remove it")
    data_type = tensor.get("data_type", "TYPE_INVALID")
    datatype = {"TYPE_STRING": "BYTES"}.get(data_type, data_type.removeprefix("TYPE_"))
    if datatype in ("INVALID", "BF16"):
        raise ConfigError(
            source, f"{where}.data_type", f"expected a TYPE_* other than BF16, got {data_type}"
        )
    dims = [int(d) for d in tensor.get("dims", [])]
    shape = [-1, *dims] if batch > 0 else dims
    return {"name": tensor.get("name", ""), "datatype": datatype, "shape": shape}


def _batching(block: dict[str, Any] | None, source: str) -> dict[str, Any]:
    if block is None:
        # Triton without dynamic_batching runs each request alone; inferd's batcher with no
        # wait does the same at low load and only combines requests that queue up anyway.
        return {}
    for key in set(block) - _BATCHING_KEYS:
        raise ConfigError(source, f"dynamic_batching.{key}", "not supported by inferd; remove it")
    out: dict[str, Any] = {
        "max_queue_delay_ms": int(block.get("max_queue_delay_microseconds", 0)) / 1000.0,
        "preferred_batch_sizes": [int(s) for s in block.get("preferred_batch_size", [])],
    }
    if int(block.get("default_priority_level", 0)) > 0:
        out["default_priority_level"] = int(block["default_priority_level"])
    queue = block.get("default_queue_policy", {})
    if int(queue.get("max_queue_size", 0)) > 0:
        out["max_queue_size"] = int(queue["max_queue_size"])
    if int(queue.get("default_timeout_microseconds", 0)) > 0:
        out["queue_timeout_ms"] = int(queue["default_timeout_microseconds"]) / 1000.0
    return out


def _instances(groups: list[dict[str, Any]], source: str) -> dict[str, Any]:
    if not groups:
        return {}
    kinds = {g.get("kind", "KIND_AUTO") for g in groups}
    if len(kinds) > 1 or (len(groups) > 1 and any(g.get("gpus") for g in groups)):
        raise ConfigError(
            source, "instance_group", "expected one kind of device (inferd uses one per model)"
        )
    group = groups[0]
    kind = group.get("kind", "KIND_AUTO")
    device = {"KIND_CPU": "cpu", "KIND_GPU": "cuda", "KIND_AUTO": "auto"}.get(kind)
    if device is None:
        raise ConfigError(
            source, "instance_group.kind", f"expected KIND_CPU, KIND_GPU or KIND_AUTO, got {kind}"
        )
    gpus = group.get("gpus", [])
    if len(gpus) > 1:
        raise ConfigError(source, "instance_group.gpus", f"expected at most one GPU, got {gpus}")
    if gpus:
        device = f"cuda:{gpus[0]}"
    return {"instances": sum(int(g.get("count", 1)) for g in groups), "device": device}


def _version_policy(policy: dict[str, Any]) -> Any:
    if "all" in policy:
        return "all"
    if "specific" in policy:
        return {"specific": [int(v) for v in policy["specific"].get("versions", [])]}
    return {"latest": int(policy.get("latest", {}).get("num_versions", 1))}


def _check_filename(name: str | None, platform: str, source: str) -> None:
    if name and name != _ARTIFACTS.get(platform):
        raise ConfigError(
            source,
            "default_model_filename",
            f"expected {_ARTIFACTS.get(platform)} (or none) for {platform}, got {name}",
        )


def _scalar(text: str) -> Any:
    """Triton parameters are strings; runtime options like thread counts are numbers."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
