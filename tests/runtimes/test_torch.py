"""TorchScript and torch.export runtimes on tiny real models."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixtures.models import load_runtime, mlp_forward

from inferd.config import parse_model_config
from inferd.errors import (
    ConfigError,
    FrameworkMissing,
    InferenceFailed,
    ModelLoadError,
    ModelNotReady,
)
from inferd.runtimes import runtime_class
from inferd.runtimes.torch import TorchExportRuntime, TorchScriptRuntime

LINEAR_IO = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
}
MLP_IO = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
}
PLATFORMS = ("torchscript", "torch_export")


def test_platforms_resolve_to_torch_runtimes() -> None:
    assert runtime_class("torchscript") is TorchScriptRuntime
    assert runtime_class("torch_export") is TorchExportRuntime


@pytest.mark.parametrize("platform", PLATFORMS)
def test_linear_computes_2x_plus_1(platform: str, linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime(platform, linear_model(platform), **LINEAR_IO)
    # Decoded request bodies are read-only views; they must work without a warning.
    x = np.frombuffer(np.array([1, 2, 3], dtype=np.float32).tobytes(), dtype=np.float32)
    out = runtime.infer({"x": x})
    assert list(out) == ["y"]
    assert out["y"].dtype == np.float32
    np.testing.assert_array_equal(out["y"], [3, 5, 7])
    assert runtime.device == "cpu"


def test_export_signature_comes_from_the_program(linear_model: Callable[[str], Path]) -> None:
    signature = load_runtime("torch_export", linear_model("torch_export")).signature()
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("x", "FP32", (-1,))]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("output__0", "FP32", (-1,))
    ]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_mlp_matches_numpy_for_any_batch_size(
    platform: str, mlp_model: Callable[[str], Path], mlp: Any
) -> None:
    fields = MLP_IO if platform == "torchscript" else {"outputs": MLP_IO["outputs"]}
    runtime = load_runtime(platform, mlp_model(platform), **fields)
    runtime.warmup([1, 64], iterations=2)
    for rows in (1, 5, 64):
        x = np.random.default_rng(rows).standard_normal((rows, 16)).astype(np.float32)
        y = runtime.infer({runtime.signature().inputs[0].name: x})["y"]
        assert y.shape == (rows, 4)
        np.testing.assert_allclose(y, mlp_forward(x, mlp), rtol=1e-5, atol=1e-5)


def test_export_dict_outputs_are_named_by_their_keys(tmp_path: Path) -> None:
    class TwoHeads(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"total": a + b, "scaled": (a * 10).to(torch.int64)}

    path = tmp_path / "1" / "model.pt2"
    path.parent.mkdir()
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        TwoHeads(), (torch.ones(2, 3), torch.ones(2, 3)), dynamic_shapes=({0: batch}, {0: batch})
    )
    torch.export.save(program, str(path))
    runtime = load_runtime("torch_export", path)
    signature = runtime.signature()
    assert [s.name for s in signature.inputs] == ["a", "b"]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("total", "FP32", (-1, 3)),
        ("scaled", "INT64", (-1, 3)),
    ]
    out = runtime.infer({"a": np.ones((1, 3), np.float32), "b": np.full((1, 3), 2, np.float32)})
    np.testing.assert_array_equal(out["total"], [[3, 3, 3]])
    np.testing.assert_array_equal(out["scaled"], [[10, 10, 10]])


def test_torchscript_needs_the_signature_in_model_yaml(linear_model: Callable[[str], Path]) -> None:
    with pytest.raises(
        ModelLoadError, match=r"model\.yaml must declare inputs and outputs"
    ) as info:
        load_runtime("torchscript", linear_model("torchscript"))
    assert str(linear_model("torchscript")) in str(info.value)


def test_torchscript_inputs_are_named_like_forward(linear_model: Callable[[str], Path]) -> None:
    fields = {**LINEAR_IO, "inputs": [{"name": "z", "datatype": "FP32", "shape": [-1]}]}
    with pytest.raises(ModelLoadError, match=r"forward\(\)'s arguments \['x'\].*\['z'\]"):
        load_runtime("torchscript", linear_model("torchscript"), **fields)


@pytest.mark.parametrize(
    ("declared", "mentions"),
    [
        ({"name": "x", "datatype": "INT64", "shape": [-1]}, ["input 'x' datatype", "INT64"]),
        ({"name": "x", "datatype": "FP32", "shape": [-1, 2]}, ["input 'x' shape", "[-1, 2]"]),
        ({"name": "q", "datatype": "FP32", "shape": [-1]}, ["inputs: expected names ['x']"]),
    ],
)
def test_export_signature_must_match_model_yaml(
    linear_model: Callable[[str], Path], declared: dict[str, Any], mentions: list[str]
) -> None:
    path = linear_model("torch_export")
    with pytest.raises(ModelLoadError) as info:
        load_runtime("torch_export", path, inputs=[declared])
    for text in [*mentions, str(path), "model.yaml", "artifact"]:
        assert text in str(info.value)


def test_torchscript_wrong_output_count_fails_inference(
    linear_model: Callable[[str], Path],
) -> None:
    outputs = [*LINEAR_IO["outputs"], {"name": "z", "datatype": "FP32", "shape": [-1]}]
    runtime = load_runtime(
        "torchscript", linear_model("torchscript"), **{**LINEAR_IO, "outputs": outputs}
    )
    with pytest.raises(InferenceFailed, match=r"returned Tensor.*\['y', 'z'\]|1 values"):
        runtime.infer({"x": np.ones(2, np.float32)})


@pytest.mark.parametrize(
    ("platform", "source"),
    [("torchscript", None), ("torch_export", None), ("torchscript", "torch_export"),
     ("torch_export", "torchscript")],
)  # fmt: skip
def test_corrupt_or_foreign_files_name_the_file(
    tmp_path: Path, linear_model: Callable[[str], Path], platform: str, source: str | None
) -> None:
    path = tmp_path / "4" / ("model.pt" if platform == "torchscript" else "model.pt2")
    path.parent.mkdir()
    data = linear_model(source or platform).read_bytes()
    path.write_bytes(data if source else data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_runtime(platform, path, **LINEAR_IO)
    message = str(info.value)
    assert str(path) in message
    assert "version 4" in message
    assert "not a loadable" in message


def test_missing_file_and_folder(tmp_path: Path, linear_model: Callable[[str], Path]) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_runtime("torchscript", tmp_path / "1" / "model.pt", **LINEAR_IO)
    (tmp_path / "2" / "model.pt").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_runtime("torchscript", tmp_path / "2" / "model.pt", **LINEAR_IO)


def test_missing_torch_names_the_extra(
    linear_model: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(FrameworkMissing, match=r"pip install 'inferd\[torch\]'"):
        load_runtime("torch_export", linear_model("torch_export"))


def test_intra_op_threads_apply_in_the_calling_thread(
    linear_model: Callable[[str], Path],
) -> None:
    runtime = load_runtime(
        "torch_export", linear_model("torch_export"), parameters={"intra_op_threads": 1}
    )
    seen: list[int] = []

    def call() -> None:
        runtime.infer({"x": np.ones(4, np.float32)})
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    assert seen == [1]


@pytest.mark.parametrize(
    "parameters", [{"intra_op_threads": -1}, {"intra_op_threads": True}, {"threads": 2}]
)
def test_bad_parameters_raise_config_error(
    linear_model: Callable[[str], Path], parameters: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match=r"model.yaml of m.*parameters\."):
        load_runtime("torch_export", linear_model("torch_export"), parameters=parameters)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_names_model_and_device(linear_model: Callable[[str], Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"model 'm'.*'cuda:0'.*PyTorch sees no GPU"):
        load_runtime("torch_export", linear_model("torch_export"), device="cuda:0")
    assert load_runtime("torch_export", linear_model("torch_export"), device="auto").device == "cpu"


def test_a_gpu_too_small_fails_with_the_bytes_needed(
    linear_model: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CUDA driver is the boundary: two GPUs with 10 and 20 bytes free.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (10 * (i + 1), 1000))
    path = linear_model("torch_export")
    with pytest.raises(ModelLoadError) as info:
        load_runtime("torch_export", path, device="auto")
    message = str(info.value)
    assert "model 'm'" in message
    assert "out of memory on cuda:1" in message  # auto took the GPU with the most free memory
    assert f"({path.stat().st_size} bytes)" in message
    assert "20 B free" in message


def test_unload_frees_and_refuses_inference(linear_model: Callable[[str], Path]) -> None:
    runtime = load_runtime("torch_export", linear_model("torch_export"))
    assert runtime.memory_bytes() > 0
    assert runtime.memory_usage().device_bytes == 0
    runtime.unload()
    assert runtime.memory_bytes() == 0
    with pytest.raises(ModelNotReady):
        runtime.infer({"x": np.ones(1, np.float32)})


def test_signature_before_load_is_not_ready(linear_model: Callable[[str], Path]) -> None:
    config = parse_model_config({"platform": "torch_export"}, "test", "m")
    runtime = TorchExportRuntime(config, linear_model("torch_export"))
    assert runtime.memory_bytes() == linear_model("torch_export").stat().st_size
    with pytest.raises(ModelNotReady):
        runtime.signature()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("platform", PLATFORMS)
def test_cpu_and_gpu_agree(platform: str, mlp_model: Callable[[str], Path]) -> None:
    fields = MLP_IO if platform == "torchscript" else {"outputs": MLP_IO["outputs"]}
    cpu = load_runtime(platform, mlp_model(platform), device="cpu", **fields)
    gpu = load_runtime(platform, mlp_model(platform), device="auto", **fields)
    assert gpu.device.startswith("cuda:")
    assert gpu.memory_usage().device_bytes > 0
    x = np.random.default_rng(7).standard_normal((33, 16)).astype(np.float32)
    np.testing.assert_allclose(gpu.infer({"x": x})["y"], cpu.infer({"x": x})["y"], atol=1e-5)
    gpu.unload()
