"""Triton's config.pbtxt read as a model.yaml, and a Triton-style repository served."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fixtures.triton import DATATYPES, sample, write_identity_model

from inferd.api.app import build_app
from inferd.errors import ConfigError
from inferd.serving import repository
from inferd.serving.triton_config import load_triton_config
from inferd.settings import Settings
from inferd.types import InferenceRequest

FULL = """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 4 ] format: FORMAT_NCHW } ]
output [ { name: "y" data_type: TYPE_STRING dims: [ 1 ] } ]
dynamic_batching {
  max_queue_delay_microseconds: 2500
  preferred_batch_size: [ 4, 8 ]
  default_queue_policy { max_queue_size: 10 default_timeout_microseconds: 50000 }
}
instance_group [ { count: 3 kind: KIND_GPU gpus: [ 1 ] } ]
version_policy: { specific: { versions: [ 1, 3 ] } }
parameters { key: "intra_op_threads" value: { string_value: "2" } }
optimization { graph { level: 1 } }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m" / "config.pbtxt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_understood_field_is_translated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        config = load_triton_config(write(tmp_path, FULL), default_name="m")
    assert config.platform == "onnx"
    assert config.max_batch_size == 16
    assert [(t.name, t.datatype, t.shape) for t in config.inputs] == [("x", "FP32", [-1, -1, 4])]
    assert [(t.name, t.datatype, t.shape) for t in config.outputs] == [("y", "BYTES", [-1, 1])]
    assert config.batching.max_queue_delay_ms == 2.5
    assert config.batching.preferred_batch_sizes == [4, 8]
    assert config.batching.max_queue_size == 10
    assert config.batching.queue_timeout_ms == 50
    assert (config.instances.max, config.device) == (3, "cuda:1")
    assert config.version_policy.specific == [1, 3]
    assert config.parameters == {"intra_op_threads": 2}
    # Known to Triton but without effect here: reported, not silently dropped.
    assert "'optimization' has no effect" in caplog.text
    assert "'input[0].format' has no effect" in caplog.text


def test_unbatched_model_keeps_its_dims(tmp_path: Path) -> None:
    text = 'backend: "pytorch" input [{name: "a" data_type: TYPE_INT64 dims: [2, 3]}]'
    config = load_triton_config(write(tmp_path, text), default_name="m")
    assert (config.name, config.platform, config.max_batch_size) == ("m", "torchscript", 0)
    assert config.inputs[0].shape == [2, 3]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('platform: "onnxruntime_onnx" max_batch: 4', "(file)"),  # not a Triton field at all
        ('platform: "onnxruntime_onnx" sequence_batching {}', "sequence_batching"),
        ('platform: "onnxruntime_onnx" ensemble_scheduling {}', "ensemble_scheduling"),
        ('platform: "tensorrt_plan"', "platform"),
        ("max_batch_size: 2", "platform"),
        (
            'backend: "onnxruntime" input [{name: "x" data_type: TYPE_BF16 dims: [1]}]',
            "input[0].data_type",
        ),
        (
            'backend: "onnxruntime" input [{name: "x" data_type: TYPE_FP32 dims: [1] '
            "reshape: {shape: [1]}}]",
            "input[0].reshape",
        ),
        ('backend: "onnxruntime" default_model_filename: "net.onnx"', "default_model_filename"),
        (
            'backend: "onnxruntime" max_batch_size: 4 dynamic_batching { priority_queue_policy '
            "{ key: 1 value: { max_queue_size: 2 } } }",
            "dynamic_batching.priority_queue_policy",
        ),
    ],
)
def test_what_cannot_be_honoured_is_an_error_naming_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_triton_config(write(tmp_path, text), default_name="m")
    assert info.value.field == field
    assert "config.pbtxt" in info.value.message


def test_repository_reads_config_pbtxt_folders(tmp_path: Path) -> None:
    write_identity_model(tmp_path)
    assert repository.model_names(tmp_path) == ["identity"]
    config = repository.read_config(tmp_path, "identity")
    assert (config.instances.min, config.instances.max) == (2, 2)
    assert config.batching.preferred_batch_sizes == [4, 8]
    assert list(repository.version_artifacts(tmp_path / "identity", config.platform)) == [1]


async def test_triton_style_repository_is_served(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_identity_model(root)
    dataplane = build_app(Settings(home=tmp_path, model_repository=root)).dataplane
    assert await dataplane.start() == {}
    try:
        meta = dataplane.model_metadata("identity", None)
        assert [t["datatype"] for t in meta["inputs"]] == list(DATATYPES)
        config = dataplane.model_config("identity", None)
        assert config["max_batch_size"] == 8
        assert config["input"][0]["dims"] == [3]
        inputs = {f"in_{d}": sample(d) for d in DATATYPES}
        response = await dataplane.infer(InferenceRequest("identity", None, inputs), "http")
        for d in DATATYPES:
            np.testing.assert_array_equal(response.outputs[f"out_{d}"], inputs[f"in_{d}"])
    finally:
        await dataplane.stop()
