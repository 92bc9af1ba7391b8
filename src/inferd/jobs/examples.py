"""A small tabular model for batch jobs, their tests and their benchmark.

    <root>/tabular/model.yaml, <root>/tabular/1/model.onnx    x FP32 [-1, 16] -> y FP32 [-1, 1]

A 16 -> 32 (ReLU) -> 1 MLP built with ``onnx.helper``, like the built-in examples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inferd.serving.examples import IR_VERSION, OPSET, ensure_examples

TABULAR_YAML = """\
# 16 -> 32 (ReLU) -> 1. Written by inferd.jobs.examples.
platform: onnx
max_batch_size: 64
inputs:
  - {name: x, datatype: FP32, shape: [-1, 16], allow_nan: false}
outputs:
  - {name: y, datatype: FP32, shape: [-1, 1]}
"""


def tabular_weights(seed: int = 0, features: int = 16, hidden: int = 32) -> list[np.ndarray]:
    """``[W0, b0, W1, b1]`` of the tabular MLP, FP32 (tests compute a reference with them)."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((features, hidden)) * np.sqrt(2.0 / features)).astype(np.float32),
        (rng.standard_normal(hidden) * 0.01).astype(np.float32),
        (rng.standard_normal((hidden, 1)) * np.sqrt(2.0 / hidden)).astype(np.float32),
        (rng.standard_normal(1) * 0.01).astype(np.float32),
    ]


def build_tabular_onnx(path: Path, seed: int = 0) -> None:
    """Write the 16 -> 32 -> 1 ReLU MLP to ``path`` (its folder is created)."""
    import onnx
    from onnx import helper, numpy_helper

    names = ["W0", "b0", "W1", "b1"]
    weights = [
        numpy_helper.from_array(w, n) for w, n in zip(tabular_weights(seed), names, strict=True)
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W0"], ["h0"]),
        helper.make_node("Add", ["h0", "b0"], ["z0"]),
        helper.make_node("Relu", ["z0"], ["a0"]),
        helper.make_node("MatMul", ["a0", "W1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tabular",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 1])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def tabular_reference(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """What the tabular model answers for ``x`` [n, 16], computed with numpy."""
    w0, b0, w1, b1 = tabular_weights(seed)
    hidden = np.maximum(x.astype(np.float32) @ w0 + b0, 0)
    out: np.ndarray = hidden @ w1 + b1
    return out


def ensure_job_examples(root: Path) -> Path:
    """The built-in examples (``linear``, ``mlp``) plus ``tabular``, under ``root``."""
    ensure_examples(root)
    if not (root / "tabular" / "1" / "model.onnx").exists():
        build_tabular_onnx(root / "tabular" / "1" / "model.onnx")
    if not (root / "tabular" / "model.yaml").exists():
        (root / "tabular" / "model.yaml").write_text(TABULAR_YAML)
    return root
