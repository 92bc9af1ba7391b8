"""TensorFlowRuntime on tiny real SavedModels."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from fixtures.models import load_runtime, mlp_forward

from inferd.errors import ConfigError, FrameworkMissing, ModelLoadError, ModelNotReady
from inferd.runtimes import runtime_class
from inferd.runtimes.tensorflow import TensorFlowRuntime

HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


def test_platform_resolves_to_tensorflow_runtime() -> None:
    assert runtime_class("tensorflow") is TensorFlowRuntime


def test_linear_signature_and_answer(linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime("tensorflow", linear_model("tensorflow"))
    signature = runtime.signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("x", "FP32", (-1,))]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [("y", "FP32", (-1,))]
    x = np.frombuffer(np.array([1, 2, 3], np.float32).tobytes(), np.float32)
    out = runtime.infer({"x": x})
    np.testing.assert_array_equal(out["y"], np.array([3, 5, 7], np.float32))
    assert out["y"].dtype == np.float32
    assert runtime.device == "cpu"
    assert runtime.memory_bytes() > 0


def test_mlp_matches_numpy_for_any_batch_size(mlp_model: Callable[[str], Path], mlp: Any) -> None:
    runtime = load_runtime("tensorflow", mlp_model("tensorflow"))
    assert runtime.signature().inputs[0].shape == (-1, 16)
    runtime.warmup([1, 64], iterations=2)
    for rows in (1, 7, 64):
        x = np.random.default_rng(rows).standard_normal((rows, 16)).astype(np.float32)
        np.testing.assert_allclose(
            runtime.infer({"x": x})["y"], mlp_forward(x, mlp), rtol=1e-5, atol=1e-5
        )


def test_text_tensors_go_in_and_come_out_as_bytes(tmp_path: Path) -> None:
    class Upper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def __call__(self, text: Any) -> dict[str, Any]:
            return {"upper": tf.strings.upper(text), "length": tf.strings.length(text)}

    path = tmp_path / "1" / "model.savedmodel"
    module = Upper()
    tf.saved_model.save(module, str(path), signatures=module.__call__.get_concrete_function())
    runtime = load_runtime("tensorflow", path)
    assert [s.datatype for s in runtime.signature().outputs] == ["INT32", "BYTES"]
    runtime.warmup([2])
    out = runtime.infer({"text": np.array([b"cat", b"dog!"], dtype=np.object_)})
    assert out["upper"].tolist() == [b"CAT", b"DOG!"]
    np.testing.assert_array_equal(out["length"], [3, 4])


def test_declared_signature_refines_and_must_match(linear_model: Callable[[str], Path]) -> None:
    path = linear_model("tensorflow")
    runtime = load_runtime(
        "tensorflow",
        path,
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1], "allow_nan": False}],
    )
    assert runtime.signature().inputs[0].allow_nan is False
    with pytest.raises(ModelLoadError) as info:
        load_runtime("tensorflow", path, outputs=[{"name": "y", "datatype": "FP64", "shape": [-1]}])
    for text in [str(path), "output 'y' datatype", "FP32 from the artifact", "FP64 in model.yaml"]:
        assert text in str(info.value)


def test_unknown_signature_name_lists_the_available_ones(
    linear_model: Callable[[str], Path],
) -> None:
    with pytest.raises(ModelLoadError, match=r"no signature 'predict'.*\['serving_default'\]"):
        load_runtime(
            "tensorflow", linear_model("tensorflow"), parameters={"signature_name": "predict"}
        )


def test_not_a_savedmodel_folder(tmp_path: Path, linear_model: Callable[[str], Path]) -> None:
    empty = tmp_path / "1" / "model.savedmodel"
    empty.mkdir(parents=True)
    with pytest.raises(ModelLoadError, match=r"no saved_model\.pb inside") as info:
        load_runtime("tensorflow", empty)
    assert str(empty) in str(info.value)
    file = tmp_path / "2" / "model.savedmodel"
    file.parent.mkdir()
    file.write_bytes(b"not a folder")
    with pytest.raises(ModelLoadError, match="is a file, expected a SavedModel folder"):
        load_runtime("tensorflow", file)


def test_truncated_saved_model_names_the_folder(
    tmp_path: Path, linear_model: Callable[[str], Path]
) -> None:
    path = tmp_path / "3" / "model.savedmodel"
    shutil.copytree(linear_model("tensorflow"), path)
    pb = path / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:200])
    with pytest.raises(ModelLoadError, match="not a loadable SavedModel") as info:
        load_runtime("tensorflow", path)
    assert str(path) in str(info.value)
    assert "version 3" in str(info.value)


def test_bad_parameter_raises_config_error(linear_model: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match=r"parameters\.signature"):
        load_runtime("tensorflow", linear_model("tensorflow"), parameters={"signature": "x"})


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_names_model_and_device(linear_model: Callable[[str], Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"model 'm'.*'cuda:1'.*TensorFlow sees no GPU"):
        load_runtime("tensorflow", linear_model("tensorflow"), device="cuda:1")
    assert load_runtime("tensorflow", linear_model("tensorflow"), device="auto").device == "cpu"


def test_missing_tensorflow_names_the_extra(
    linear_model: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(FrameworkMissing, match=r"pip install 'inferd\[tensorflow\]'"):
        load_runtime("tensorflow", linear_model("tensorflow"))


def test_unload_frees_and_refuses_inference(linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime("tensorflow", linear_model("tensorflow"))
    runtime.unload()
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones(1, np.float32)})


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU TensorFlow sees")
def test_cpu_and_gpu_agree(mlp_model: Callable[[str], Path]) -> None:
    cpu = load_runtime("tensorflow", mlp_model("tensorflow"), device="cpu")
    gpu = load_runtime("tensorflow", mlp_model("tensorflow"), device="auto")
    assert gpu.device.startswith("cuda:")
    x = np.random.default_rng(7).standard_normal((33, 16)).astype(np.float32)
    np.testing.assert_allclose(gpu.infer({"x": x})["y"], cpu.infer({"x": x})["y"], atol=1e-5)
