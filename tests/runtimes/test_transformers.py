"""TransformersRuntime: platform lookup, V2 infer of texts, parameters, load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.generative import TinyLM, tiny_lm  # noqa: F401 - the fixture
from fixtures.models import load_runtime

from inferd.errors import ConfigError, ModelLoadError
from inferd.runtimes import runtime_class
from inferd.runtimes.transformers import TransformersRuntime


def test_platform_resolves_to_transformers_runtime() -> None:
    assert runtime_class("transformers") is TransformersRuntime


def test_infer_answers_greedy_continuations_row_by_row(tiny_lm: TinyLM) -> None:  # noqa: F811
    runtime = load_runtime("transformers", tiny_lm.path, parameters={"default_max_tokens": 8})
    try:
        runtime.warmup([2])
        prompts = ["Hello world", "a"]
        out = runtime.infer({"text_input": np.array([p.encode() for p in prompts], dtype=object)})
        expected = [tiny_lm.greedy(p, 8)[1].encode() for p in prompts]
        assert list(out["text_output"]) == expected
        assert [s.name for s in runtime.signature().inputs] == ["text_input"]
    finally:
        runtime.unload()


def test_unknown_parameter_is_refused(tiny_lm: TinyLM) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"'parameters\.max_batch': unknown transformers"):
        load_runtime("transformers", tiny_lm.path, parameters={"max_batch": 4})


def test_a_folder_without_config_fails_the_load(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_runtime("transformers", tmp_path)


def test_memory_usage_counts_the_weights_where_they_are(tiny_lm: TinyLM) -> None:  # noqa: F811
    runtime = load_runtime("transformers", tiny_lm.path)
    try:
        usage = runtime.memory_usage()
        assert usage.device_bytes == 0  # on the CPU: all of it is host memory
        assert usage.host_bytes > 0
        assert runtime.memory_bytes() == usage.total
    finally:
        runtime.unload()
    assert runtime.memory_bytes() == 0


def test_on_a_gpu_the_weights_count_as_device_memory_and_greedy_agrees(
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    runtime = load_runtime("transformers", tiny_lm.path, device="cuda:0",
                           parameters={"default_max_tokens": 8})  # fmt: skip
    try:
        assert runtime.memory_usage().device_bytes > 0
        out = runtime.infer({"text_input": np.array([b"Hello world"], dtype=object)})
        assert out["text_output"][0] == tiny_lm.greedy("Hello world", 8)[1].encode()
    finally:
        runtime.unload()
