"""OnnxRuntime on tiny real ONNX models built in temporary folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from inferd.config import ModelConfig, parse_model_config
from inferd.errors import ConfigError, FrameworkMissing, ModelLoadError, ModelNotReady
from inferd.runtimes import runtime_class
from inferd.runtimes.onnx import OnnxRuntime
from inferd.serving.examples import build_linear_onnx, build_mlp_onnx

HAS_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="session")
def linear_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("linear") / "1" / "model.onnx"
    build_linear_onnx(path)
    return path


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlp") / "1" / "model.onnx"
    build_mlp_onnx(path)
    return path


def make_config(name: str = "m", **fields: Any) -> ModelConfig:
    return parse_model_config({"platform": "onnx", **fields}, "test", name)


def loaded(path: Path, device: str = "cpu", **fields: Any) -> OnnxRuntime:
    runtime = OnnxRuntime(make_config(**fields), path, device)
    runtime.load()
    return runtime


def identity_model(path: Path, elem_type: int, shape: list[Any]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem_type, shape)],
        [helper.make_tensor_value_info("y", elem_type, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def test_platform_onnx_resolves_to_onnx_runtime() -> None:
    assert runtime_class("onnx") is OnnxRuntime


def test_linear_computes_2x_plus_1(linear_path: Path) -> None:
    runtime = loaded(linear_path)
    out = runtime.infer({"x": np.array([1, 2, 3], dtype=np.float32)})
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], np.array([3, 5, 7], dtype=np.float32))
    assert runtime.device == "cpu"


def test_mlp_matches_numpy_forward_pass(mlp_path: Path) -> None:
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(mlp_path)).graph.initializer}
    x = np.random.default_rng(1).standard_normal((5, 256)).astype(np.float32)
    expected = x
    for i in range(3):
        expected = expected @ weights[f"W{i}"] + weights[f"b{i}"]
        if i < 2:
            expected = np.maximum(expected, 0)

    y = loaded(mlp_path).infer({"x": x})["y"]

    assert y.shape == (5, 10)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_signature_comes_from_the_graph(mlp_path: Path) -> None:
    signature = loaded(mlp_path).signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("x", "FP32", (-1, 256))]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [("y", "FP32", (-1, 10))]
    assert signature.inputs[0].allow_nan


@pytest.mark.parametrize(
    ("elem_type", "datatype"),
    [
        (TensorProto.INT64, "INT64"),
        (TensorProto.INT8, "INT8"),
        (TensorProto.UINT8, "UINT8"),
        (TensorProto.BOOL, "BOOL"),
        (TensorProto.FLOAT16, "FP16"),
        (TensorProto.DOUBLE, "FP64"),
        (TensorProto.STRING, "BYTES"),
    ],
)
def test_graph_types_map_to_v2_datatypes(tmp_path: Path, elem_type: int, datatype: str) -> None:
    path = identity_model(tmp_path / "1" / "model.onnx", elem_type, [None, 3])
    spec = loaded(path).signature().inputs[0]
    assert (spec.datatype, spec.shape) == (datatype, (-1, 3))


def test_bytes_tensors_go_in_and_come_out_as_bytes(tmp_path: Path) -> None:
    path = identity_model(tmp_path / "1" / "model.onnx", TensorProto.STRING, ["n"])
    runtime = loaded(path)
    out = runtime.infer({"x": np.array([b"cat", "d\u00f6g".encode()], dtype=np.object_)})
    assert out["y"].dtype == np.object_
    assert out["y"].tolist() == [b"cat", "d\u00f6g".encode()]
    runtime.warmup([2])


def test_declared_signature_refines_the_graph(linear_path: Path) -> None:
    runtime = loaded(
        linear_path,
        inputs=[{"name": "x", "datatype": "FP32", "shape": [8], "allow_nan": False}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1]}],
    )
    (x,) = runtime.signature().inputs
    assert (x.shape, x.allow_nan) == ((8,), False)
    assert runtime.signature().outputs[0].shape == (-1,)


@pytest.mark.parametrize(
    ("declared", "mentions"),
    [
        ({"name": "x", "datatype": "INT64", "shape": [-1, 256]}, ["input 'x'", "datatype"]),
        ({"name": "x", "datatype": "FP32", "shape": [-1, 128]}, ["input 'x'", "shape", "128"]),
        ({"name": "x", "datatype": "FP32", "shape": [-1]}, ["input 'x'", "shape"]),
        ({"name": "features", "datatype": "FP32", "shape": [-1, 256]}, ["inputs", "features"]),
    ],
)
def test_declared_signature_must_match_the_graph(
    mlp_path: Path, declared: dict[str, Any], mentions: list[str]
) -> None:
    with pytest.raises(ModelLoadError) as info:
        loaded(mlp_path, inputs=[declared])
    for text in [*mentions, "model.yaml", "artifact"]:
        assert text in str(info.value)


def test_truncated_file_names_the_path(tmp_path: Path, linear_path: Path) -> None:
    path = tmp_path / "3" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(linear_path.read_bytes()[:40])
    with pytest.raises(ModelLoadError) as info:
        loaded(path)
    assert str(path) in str(info.value)
    assert "version 3" in str(info.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "1" / "model.onnx"
    with pytest.raises(ModelLoadError, match="file not found") as info:
        loaded(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"intra_op_threads": "two"}, "parameters.intra_op_threads"),
        ({"intra_op_threads": True}, "parameters.intra_op_threads"),
        ({"inter_op_threads": -1}, "parameters.inter_op_threads"),
        ({"graph_optimization_level": "fast"}, "parameters.graph_optimization_level"),
        ({"graph_optimization_level": 2}, "parameters.graph_optimization_level"),
        ({"intra_op_thread": 2}, "parameters.intra_op_thread"),
    ],
)
def test_bad_parameters_raise_config_error(
    linear_path: Path, parameters: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        loaded(linear_path, parameters=parameters)
    assert info.value.field == field
    assert "model.yaml of m" in str(info.value)
    assert "expected" in str(info.value)


def test_session_parameters_are_applied(linear_path: Path) -> None:
    parameters = {"intra_op_threads": 2, "inter_op_threads": 1, "graph_optimization_level": "basic"}
    runtime = loaded(linear_path, parameters=parameters)
    out = runtime.infer({"x": np.array([0.5], dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], [2.0])


def test_warmup_runs_every_batch_size(mlp_path: Path) -> None:
    runtime = loaded(mlp_path)
    runtime.warmup([1, 64], iterations=2)
    assert runtime.infer({"x": np.zeros((64, 256), dtype=np.float32)})["y"].shape == (64, 10)


def test_unload_frees_the_session(linear_path: Path) -> None:
    runtime = loaded(linear_path)
    assert runtime.memory_bytes() > 0
    runtime.unload()
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones(1, dtype=np.float32)})


def test_signature_before_load_is_not_ready(linear_path: Path) -> None:
    runtime = OnnxRuntime(make_config(), linear_path)
    assert runtime.memory_bytes() == linear_path.stat().st_size
    with pytest.raises(ModelNotReady):
        runtime.signature()


def test_auto_device_uses_cuda_only_when_available(linear_path: Path) -> None:
    assert loaded(linear_path, device="auto").device == ("cuda:0" if HAS_CUDA else "cpu")


@pytest.mark.skipif(HAS_CUDA, reason="needs an onnxruntime build without CUDA")
def test_cuda_device_without_cuda_provider_fails(linear_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cuda:1.*CUDAExecutionProvider"):
        loaded(linear_path, device="cuda:1")


def test_missing_onnxruntime_raises_framework_missing(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(FrameworkMissing, match=r"inferd\[onnx\]"):
        loaded(linear_path)


def test_non_tensor_outputs_are_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["y"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_sequence_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "1" / "model.onnx"
    path.parent.mkdir()
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=r"tensor 'y'.*seq"):
        loaded(path)
