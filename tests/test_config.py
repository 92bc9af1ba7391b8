from pathlib import Path

import pytest

from inferd.config import ModelConfig, VersionPolicy, load_model_config, parse_model_config
from inferd.errors import ConfigError
from inferd.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


def test_full_config_parses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
platform: onnx
inputs: [{name: x, datatype: fp32, shape: [-1, 4], allow_nan: false}]
outputs: [{name: y, datatype: FP32, shape: [-1, 2]}]
max_batch_size: 16
batching: {max_queue_delay_ms: 2, preferred_batch_sizes: [8, 4, 8], max_queue_size: 10,
           queue_timeout_ms: 100}
instances: 2
device: cuda:1
warmup: false
version_policy: {latest: {num_versions: 2}}
""",
    )
    config = load_model_config(path, "m")
    assert config.name == "m"
    assert config.inputs[0].datatype == "FP32"
    assert config.inputs[0].spec().allow_nan is False
    assert config.batching.preferred_batch_sizes == [4, 8]
    assert config.warmup.enabled is False
    assert config.version_policy.select([1, 2, 3]) == [2, 3]
    assert config.batching_enabled


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("platform: caffe", "platform"),
        ("platform: onnx\nmax_batch_sise: 4", "max_batch_sise"),
        ("platform: onnx\ninputs: [{name: x, datatype: FP33, shape: [1]}]", "inputs.0.datatype"),
        ("platform: onnx\ninputs: [{name: x, datatype: FP32, shape: [0]}]", "inputs.0.shape"),
        ("platform: onnx\nbatching: {max_queue_size: 0}", "batching.max_queue_size"),
        ("platform: onnx\ndevice: gpu", "device"),
        ("inputs: []", "platform"),
        ("platform: onnx\nversion_policy: {latest: 1, all: true}", "version_policy"),
    ],
)
def test_invalid_config_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_model_config(path, "m")
    assert str(path) in str(caught.value)
    assert f"field '{field}'" in str(caught.value)


def test_unknown_field_message_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        load_model_config(write(tmp_path, "platform: onnx\nbogus: 1"), "m")


def test_not_yaml_and_not_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model_config(write(tmp_path, "platform: [onnx"), "m")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_model_config([1, 2], "x.yaml", "m")


def test_version_policies() -> None:
    assert VersionPolicy.model_validate("all").select([3, 1, 2]) == [1, 2, 3]
    assert VersionPolicy.model_validate({"specific": [1, 3]}).select([1, 2, 3]) == [1, 3]
    assert VersionPolicy.model_validate({"latest": 2}).select([1, 2, 3]) == [2, 3]
    assert ModelConfig(name="m", platform="onnx").version_policy.select([1, 5]) == [5]


def test_settings_from_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERD_HTTP_PORT", "9000")
    monkeypatch.setenv("INFERD_WORKERS", "3")
    settings = load_settings(workers=2)
    assert (settings.http_port, settings.workers) == (9000, 2)


def test_settings_errors_name_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERD_HTTP_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="--http-port or INFERD_HTTP_PORT"):
        load_settings()


def test_settings_home_follows_inferd_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFERD_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.home == tmp_path
    assert settings.resolved_registry_url == f"sqlite:///{tmp_path / 'inferd.db'}"
