"""The built-in example repository: contents, idempotence and concurrent creation."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from inferd.config import load_model_config
from inferd.runtimes.onnx import OnnxRuntime
from inferd.serving.examples import build_linear_onnx, build_mlp_onnx, ensure_examples

FILES = ("linear/model.yaml", "linear/1/model.onnx", "mlp/model.yaml", "mlp/1/model.onnx")


def mtimes(root: Path) -> dict[str, int]:
    return {name: (root / name).stat().st_mtime_ns for name in FILES}


def load(root: Path, name: str) -> OnnxRuntime:
    config = load_model_config(root / name / "model.yaml", name)
    runtime = OnnxRuntime(config, root / name / "1" / "model.onnx", "cpu")
    runtime.load()
    runtime.warmup(config.warmup.batch_sizes, config.warmup.iterations)
    return runtime


def test_ensure_examples_creates_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    assert ensure_examples(root) == root
    assert all((root / name).is_file() for name in FILES)
    assert not [p for p in root.rglob("*.tmp")]


def test_linear_config_and_model(tmp_path: Path) -> None:
    root = ensure_examples(tmp_path)
    config = load_model_config(root / "linear" / "model.yaml", "linear")
    assert (config.platform, config.max_batch_size) == ("onnx", 256)
    assert (config.batching.max_queue_delay_ms, config.batching.max_queue_size) == (0, 4096)
    assert config.warmup.batch_sizes == [1, 64]
    assert config.inputs[0].allow_nan is False

    out = load(root, "linear").infer({"x": np.array([1, 2, 3], dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], [3, 5, 7])


def test_mlp_config_and_model(tmp_path: Path) -> None:
    root = ensure_examples(tmp_path)
    config = load_model_config(root / "mlp" / "model.yaml", "mlp")
    assert (config.max_batch_size, config.batching.max_queue_size) == (64, 4096)
    assert config.warmup.batch_sizes == [1, 64]

    runtime = load(root, "mlp")
    spec = runtime.signature()
    assert [(s.name, s.datatype, s.shape) for s in spec.inputs] == [("x", "FP32", (-1, 256))]
    assert [(s.name, s.datatype, s.shape) for s in spec.outputs] == [("y", "FP32", (-1, 10))]
    y = runtime.infer({"x": np.ones((5, 256), dtype=np.float32)})["y"]
    assert y.shape == (5, 10)
    assert np.isfinite(y).all()


def test_models_use_opset_17_and_an_old_ir_version(tmp_path: Path) -> None:
    model = onnx.load(str(ensure_examples(tmp_path) / "mlp" / "1" / "model.onnx"))
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]


def test_second_call_rewrites_nothing(tmp_path: Path) -> None:
    ensure_examples(tmp_path)
    before = mtimes(tmp_path)
    ensure_examples(tmp_path)
    assert mtimes(tmp_path) == before


def test_only_missing_files_are_recreated(tmp_path: Path) -> None:
    ensure_examples(tmp_path)
    before = mtimes(tmp_path)
    (tmp_path / "mlp" / "model.yaml").unlink()
    ensure_examples(tmp_path)
    after = mtimes(tmp_path)
    assert (tmp_path / "mlp" / "model.yaml").is_file()
    assert {k: v for k, v in after.items() if k != "mlp/model.yaml"} == {
        k: v for k, v in before.items() if k != "mlp/model.yaml"
    }


def test_concurrent_creation_leaves_valid_files(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def create() -> None:
        try:
            ensure_examples(tmp_path)
        except BaseException as err:  # surfaced below; a thread would swallow it
            errors.append(err)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not [p for p in tmp_path.rglob("*.tmp")]
    out = load(tmp_path, "linear").infer({"x": np.array([0], dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], [1])


def test_build_linear_variant(tmp_path: Path) -> None:
    root = ensure_examples(tmp_path)
    build_linear_onnx(root / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
    config = load_model_config(root / "linear" / "model.yaml", "linear")
    runtime = OnnxRuntime(config, root / "linear" / "2" / "model.onnx", "cpu")
    runtime.load()
    out = runtime.infer({"x": np.array([1, 2], dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], [4, 7])


def test_build_mlp_seed_changes_the_weights(tmp_path: Path) -> None:
    build_mlp_onnx(tmp_path / "a.onnx", seed=0)
    build_mlp_onnx(tmp_path / "b.onnx", seed=1)
    build_mlp_onnx(tmp_path / "c.onnx", seed=0)
    w = {
        name: numpy_helper.to_array(onnx.load(str(tmp_path / name)).graph.initializer[0])
        for name in ("a.onnx", "b.onnx", "c.onnx")
    }
    assert w["a.onnx"].shape == (256, 1024)
    assert not np.array_equal(w["a.onnx"], w["b.onnx"])
    np.testing.assert_array_equal(w["a.onnx"], w["c.onnx"])
    # He initialisation: standard deviation sqrt(2 / fan_in).
    assert abs(float(w["a.onnx"].std()) - np.sqrt(2 / 256)) < 0.005
