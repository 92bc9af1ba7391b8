"""parameters.compile for torch.export programs: answers agree with eager PyTorch; bad values
name the field. The tests compile with the aot_eager backend (dynamo's graph capture and AOT
autograd, no C++ code generation: seconds instead of a minute on a cold CPU cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.models import build_mlp_torch_export, build_mlp_torchscript, load_runtime, mlp_weights

from inferd.errors import ConfigError

MLP = (16, 32, 4)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compile") / "1" / "model.pt2"
    return build_mlp_torch_export(path, mlp_weights(MLP))


def test_compiled_answers_agree_with_eager_for_every_batch_size(program: Path) -> None:
    eager = load_runtime("torch_export", program)
    compiled = load_runtime("torch_export", program, parameters={
        "compile": True, "compile_backend": "aot_eager", "compile_mode": "default"})  # fmt: skip
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    compiled.warmup([1, 3])
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo captured the program
    rng = np.random.default_rng(0)
    for rows in (1, 5, 8):  # the batcher's sizes: one dynamic graph serves them all
        x = rng.standard_normal((rows, MLP[0])).astype(np.float32)
        expected = eager.infer({"x": x})["output__0"]
        got = compiled.infer({"x": x})["output__0"]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("parameters", "field", "problem"),
    [
        ({"compile": "yes"}, "parameters.compile", "expected true or false, got 'yes'"),
        ({"compile": True, "compile_mode": "fast"}, "parameters.compile_mode",
         "expected one of default, reduce-overhead, max-autotune"),
        ({"compile": True, "compile_backend": "tvm2"}, "parameters.compile_backend",
         "expected one of "),
        ({"compile_mode": "default"}, "parameters.compile_mode", "applies with compile: true"),
    ],
)  # fmt: skip
def test_bad_compile_parameters_name_the_field(
    program: Path, parameters: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_runtime("torch_export", program, parameters=parameters)
    assert info.value.field == field
    assert problem in info.value.message


def test_torchscript_is_not_compiled(tmp_path: Path) -> None:
    path = build_mlp_torchscript(tmp_path / "1" / "model.pt", mlp_weights(MLP))
    with pytest.raises(ConfigError, match=r"torch\.compile serves torch_export programs"):
        load_runtime("torchscript", path, parameters={"compile": True}, inputs=[
            {"name": "x", "datatype": "FP32", "shape": [-1, 16]}])  # fmt: skip
