"""The built-in example model repository that ``inferd serve`` runs with no arguments.

    <root>/linear/model.yaml, <root>/linear/1/model.onnx   y = 2x + 1, x FP32 [-1]
    <root>/mlp/model.yaml,    <root>/mlp/1/model.onnx      x FP32 [-1, 256] -> y FP32 [-1, 10]

The models are built with ``onnx.helper`` (no torch needed) and written atomically, so several
server processes may create the repository at the same time.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from inferd.errors import FrameworkMissing

# Opset 17 came with IR version 8. Pinning both (instead of onnx's newest IR) keeps the files
# loadable by every onnxruntime that ``inferd[onnx]`` allows.
OPSET = 17
IR_VERSION = 8
MLP_LAYERS = (256, 1024, 1024, 10)

LINEAR_YAML = """\
# y = 2x + 1, elementwise. Written by inferd.serving.examples.
platform: onnx
max_batch_size: 256
inputs:
  - {name: x, datatype: FP32, shape: [-1], allow_nan: false}
outputs:
  - {name: y, datatype: FP32, shape: [-1]}
batching:
  max_queue_delay_ms: 0
  max_queue_size: 4096
warmup:
  batch_sizes: [1, 64]
"""

MLP_YAML = """\
# 256 -> 1024 (ReLU) -> 1024 (ReLU) -> 10. Written by inferd.serving.examples.
platform: onnx
max_batch_size: 64
inputs:
  - {name: x, datatype: FP32, shape: [-1, 256]}
outputs:
  - {name: y, datatype: FP32, shape: [-1, 10]}
batching:
  max_queue_delay_ms: 0
  max_queue_size: 4096
warmup:
  batch_sizes: [1, 64]
"""


def ensure_examples(root: Path) -> Path:
    """Create the example repository at ``root`` unless its files already exist.

    Existing files are left untouched, so a second call (or a second process) rewrites nothing.

    Args:
        root: folder of the model repository; created if missing.

    Returns:
        ``root``.

    Raises:
        FrameworkMissing: the ``onnx`` package is not installed.
    """
    _ensure_model(root / "linear", LINEAR_YAML, build_linear_onnx)
    _ensure_model(root / "mlp", MLP_YAML, build_mlp_onnx)
    return root


def build_linear_onnx(path: Path, a: float = 2.0, b: float = 1.0) -> None:
    """Write an ONNX model computing ``y = a * x + b`` for an FP32 input ``x`` of shape [-1].

    Args:
        path: the ``.onnx`` file to write; its folder is created if missing.
        a: the slope.
        b: the intercept.
    """
    onnx = _import_onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "a"], ["ax"]),
            helper.make_node("Add", ["ax", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n"])],
        [
            numpy_helper.from_array(np.array(a, dtype=np.float32), "a"),
            numpy_helper.from_array(np.array(b, dtype=np.float32), "b"),
        ],
    )
    _save(onnx, graph, path)


def build_mlp_onnx(path: Path, seed: int = 0) -> None:
    """Write a 256 -> 1024 -> 1024 -> 10 ReLU MLP with He-initialised FP32 weights.

    Weights ``W{i}`` (shape [in, out]) and biases ``b{i}`` are initializers, so tests can read
    them back with ``onnx.numpy_helper`` to compute a reference answer.

    Args:
        path: the ``.onnx`` file to write; its folder is created if missing.
        seed: seed of ``numpy.random.default_rng`` for the weights.
    """
    onnx = _import_onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    weights: list[Any] = []
    current = "x"
    layers = len(MLP_LAYERS) - 1
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(MLP_LAYERS)):
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        bias = rng.standard_normal(fan_out) * 0.01
        weights.append(numpy_helper.from_array(w.astype(np.float32), f"W{i}"))
        weights.append(numpy_helper.from_array(bias.astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"h{i}"]))
        out = "y" if i == layers - 1 else f"z{i}"
        nodes.append(helper.make_node("Add", [f"h{i}", f"b{i}"], [out]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"a{i}"]))
            current = f"a{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", MLP_LAYERS[0]])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", MLP_LAYERS[-1]])],
        weights,
    )
    _save(onnx, graph, path)


def _ensure_model(folder: Path, yaml_text: str, build: Any) -> None:
    artifact = folder / "1" / "model.onnx"
    config = folder / "model.yaml"
    # The artifact goes first: a repository watcher that sees model.yaml finds a version too.
    if not artifact.exists():
        build(artifact)
    if not config.exists():
        _write_atomic(config, yaml_text.encode("utf-8"))


def _save(onnx: Any, graph: Any, path: Path) -> None:
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="inferd"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    _write_atomic(path, model.SerializeToString())


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a unique temp file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); model files should read like any other.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError as err:
        raise FrameworkMissing("onnx", "onnx", err) from err
    return onnx
