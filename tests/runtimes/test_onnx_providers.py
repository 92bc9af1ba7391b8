"""parameters.execution_providers for ONNX models: checked, resolved against what the
onnxruntime build has, falling back with a warning; a GPU run where one is present."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from inferd.config import parse_model_config
from inferd.errors import ConfigError, ModelLoadError
from inferd.runtimes._providers import CPU, CUDA, TENSORRT, Provider, parse, resolve
from inferd.runtimes.onnx import OnnxRuntime
from inferd.serving.examples import build_mlp_onnx

AVAILABLE = onnxruntime.get_available_providers()
GPU_FIRST = [{"tensorrt": {"trt_fp16_enable": True}}, "cuda", "cpu"]


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlp-providers") / "1" / "model.onnx"
    build_mlp_onnx(path)
    return path


def _load(path: Path, providers: Any, device: str = "auto") -> OnnxRuntime:
    config = parse_model_config({"platform": "onnx", "parameters":
                                 {"execution_providers": providers}}, "test", "m")  # fmt: skip
    runtime = OnnxRuntime(config, path, device)
    runtime.load()
    return runtime


def test_names_and_options_parse_in_order() -> None:
    wanted = parse([
        {"TensorRT": {"trt_fp16_enable": True, "trt_max_workspace_size": 1 << 30}},
        {"cuda": {"cudnn_conv_algo_search": "HEURISTIC"}},
        "CPUExecutionProvider",
    ])  # fmt: skip
    assert wanted == [
        Provider(TENSORRT, {"trt_fp16_enable": True, "trt_max_workspace_size": 1 << 30}),
        Provider(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}),
        Provider(CPU, {}),
    ]


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ("cuda", "parameters.execution_providers",
         "expected a non-empty list of providers (tensorrt, cuda, cpu), got 'cuda'"),
        (["tpu"], "parameters.execution_providers[0]", "expected one of tensorrt, cuda, cpu"),
        ([{"cuda": {}, "cpu": {}}], "parameters.execution_providers[0]",
         "expected a provider name, or one name mapped to its options"),
        ([{"tensorrt": {"fp16": True}}], "parameters.execution_providers[0].fp16",
         "expected an option of TensorrtExecutionProvider: device_id, trt_fp16_enable"),
        ([{"tensorrt": {"trt_fp16_enable": "yes"}}],
         "parameters.execution_providers[0].trt_fp16_enable", "expected a bool, got 'yes'"),
        ([{"cuda": {"device_id": True}}], "parameters.execution_providers[0].device_id",
         "expected a int, got True"),
        ([{"cuda": {"cudnn_conv_algo_search": "FAST"}}],
         "parameters.execution_providers[0].cudnn_conv_algo_search",
         "expected one of EXHAUSTIVE, HEURISTIC, DEFAULT, got 'FAST'"),
        (["cuda", "CUDA"], "parameters.execution_providers", "expected each provider once"),
    ],
)  # fmt: skip
def test_bad_lists_name_the_entry(value: Any, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(value, "model.yaml of m")
    assert info.value.field == field
    assert info.value.message.startswith(f"model.yaml of m: field '{field}': {problem}")


def test_resolve_keeps_what_is_there_adds_the_cpu_and_the_device_id() -> None:
    wanted = parse(GPU_FIRST)
    chosen, missing = resolve(wanted, [CUDA, CPU], device_id=1)
    assert chosen == [(CUDA, {"device_id": "1"}), (CPU, {})]
    assert missing == [TENSORRT]
    chosen, _ = resolve(wanted, [TENSORRT, CUDA, CPU], device_id=None)
    assert chosen[0] == (TENSORRT, {"trt_fp16_enable": "True"})  # options go as strings
    assert resolve(parse(["cuda"]), [CPU], None) == ([(CPU, {})], [CUDA])


@pytest.mark.skipif(CUDA in AVAILABLE, reason="needs an onnxruntime build without CUDA")
def test_a_cpu_build_falls_back_with_a_warning_and_serves(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="inferd.runtimes.onnx"):
        runtime = _load(mlp_path, GPU_FIRST)
    assert runtime.device == "cpu"
    assert runtime.memory_usage().device_bytes == 0
    warning = caplog.records[-1].getMessage()
    assert "TensorrtExecutionProvider, CUDAExecutionProvider not in this onnxruntime" in warning
    assert warning.endswith("using CPUExecutionProvider")
    x = np.ones((2, 256), dtype=np.float32)
    assert runtime.infer({"x": x})["y"].shape == (2, 10)
    with pytest.raises(ModelLoadError, match=r"device 'cuda:0' requested but no GPU provider"):
        _load(mlp_path, GPU_FIRST, device="cuda:0")


def test_gpu_providers_with_device_cpu_are_refused(mlp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CPU providers only with device: cpu"):
        _load(mlp_path, ["cuda", "cpu"], device="cpu")


@pytest.mark.skipif(CUDA not in AVAILABLE, reason="needs onnxruntime-gpu and a GPU")
def test_cuda_and_cpu_agree_within_tolerance(mlp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    cpu = _load(mlp_path, ["cpu"], device="cpu").infer({"x": x})["y"]
    gpu = _load(mlp_path, GPU_FIRST)
    assert gpu.device.startswith("cuda:")
    assert gpu.memory_usage().device_bytes > 0  # the GPU's free memory fell while loading
    np.testing.assert_allclose(gpu.infer({"x": x})["y"], cpu, rtol=1e-2, atol=1e-2)  # FP16
