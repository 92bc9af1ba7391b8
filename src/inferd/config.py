"""Per-model configuration: the ``model.yaml`` of a model repository.

    ModelConfig
    ├── inputs / outputs: list[TensorConfig]
    ├── batching: BatchingConfig
    ├── instances: InstancesConfig
    ├── warmup: WarmupConfig
    ├── cache, precomputed, circuit_breaker, fallback, overload: inferd.resilience.config
    ├── preprocessing: inferd.preprocess.spec.PreprocessingConfig
    └── version_policy: VersionPolicy

``load_model_config`` turns validation failures into a :class:`ConfigError` that names the
file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferd.errors import ConfigError
from inferd.preprocess.spec import PreprocessingConfig
from inferd.resilience.config import (
    BreakerConfig,
    CacheConfig,
    FallbackConfig,
    OverloadConfig,
    PrecomputedConfig,
)
from inferd.types import DATATYPES, TensorSpec

Platform = Literal[
    "onnx",
    "torchscript",
    "torch_export",
    "tensorflow",
    "sklearn",
    "xgboost",
    "lightgbm",
    "python",
    "transformers",
    "vllm",
]

# The artifact file (or folder) each platform loads from a version folder, in order of preference.
ARTIFACT_NAMES: dict[str, tuple[str, ...]] = {
    "onnx": ("model.onnx",),
    "torchscript": ("model.pt",),
    "torch_export": ("model.pt2",),
    "tensorflow": ("model.savedmodel",),
    "sklearn": ("model.skops", "model.joblib", "model.pkl"),
    "xgboost": ("model.json", "model.ubj"),
    "lightgbm": ("model.txt",),
    "python": ("model.py",),
    # A folder saved with save_pretrained (config, weights, tokenizer): a generative model.
    "transformers": ("model.hf",),
    "vllm": ("model.hf",),  # the same folder, served by vLLM on a GPU
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorConfig(_Strict):
    """One input or output. ``-1`` marks a dynamic dimension; the first is the batch."""

    name: str = Field(min_length=1, description="Tensor name as the model knows it.")
    datatype: str = Field(description=f"One of {', '.join(DATATYPES)}.")
    shape: list[int] = Field(min_length=1, description="Dimensions, -1 for dynamic.")
    allow_nan: bool = Field(True, description="Accept NaN and Inf values in this input.")

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        upper = value.upper()
        if upper not in DATATYPES:
            raise ValueError(f"expected one of {', '.join(DATATYPES)}, got '{value}'")
        return upper

    @field_validator("shape")
    @classmethod
    def _dims(cls, value: list[int]) -> list[int]:
        for dim in value:
            if dim < -1 or dim == 0:
                raise ValueError(f"dimensions must be positive or -1 (dynamic), got {dim}")
        return value

    def spec(self) -> TensorSpec:
        return TensorSpec(self.name, self.datatype, tuple(self.shape), self.allow_nan)


class BatchingConfig(_Strict):
    """Dynamic batching policy of every loaded version of the model."""

    max_queue_delay_ms: float = Field(
        0.0,
        ge=0,
        le=60_000,
        description="How long a request may wait for company. 0 dispatches as soon as an "
        "instance is free; requests that arrive meanwhile form the next batch.",
    )
    preferred_batch_sizes: list[int] = Field(
        default_factory=list, description="Batch sizes (in rows) the batcher cuts at when it can."
    )
    max_queue_size: int = Field(
        1024, ge=1, description="Requests waiting per version before new ones get 503."
    )
    queue_timeout_ms: float | None = Field(
        None, gt=0, description="A request waiting longer than this in the queue gets 504."
    )
    default_priority_level: int = Field(
        5, ge=1, description="Priority of requests that name none (1 is the most urgent)."
    )

    @field_validator("preferred_batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(size < 1 for size in value):
            raise ValueError(f"batch sizes must be >= 1, got {value}")
        return sorted(set(value))


class InstancesConfig(_Strict):
    """How many runtime calls of a version may run at once, fixed or adaptive.

    A plain integer in model.yaml is a fixed count (``instances: 2`` is ``{min: 2, max: 2}``).
    With ``max > min`` the count starts at ``min`` and follows the load: one more instance when
    the queue held at least ``grow_queue_depth`` requests on average for ``grow_after_s`` while
    every instance was busy, one fewer when the others would have absorbed the work at most
    ``shrink_utilization`` busy for ``shrink_after_s`` (inferd.batching.scaling).
    """

    min: int = Field(1, ge=1, le=64, description="Instances a loaded version always has.")
    max: int = Field(1, ge=1, le=64, description="Most instances the version may grow to.")
    grow_queue_depth: float = Field(
        1.0, gt=0, description="Mean waiting requests that count as pressure."
    )
    grow_after_s: float = Field(
        2.0, gt=0, le=3600, description="How long pressure lasts before one instance is added."
    )
    shrink_after_s: float = Field(
        30.0, gt=0, le=86_400, description="How long spare capacity lasts before one is removed."
    )
    shrink_utilization: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Shrink when one instance fewer would have been at most this busy.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fixed_count(cls, value: Any) -> Any:
        # bool is an int subclass; `instances: true` is a typo, not a count.
        if isinstance(value, int) and not isinstance(value, bool):
            return {"min": value, "max": value}
        if isinstance(value, dict) and "min" in value and "max" not in value:
            return {**value, "max": value["min"]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> InstancesConfig:
        if self.max < self.min:
            raise ValueError(f"max must be >= min ({self.min}), got {self.max}")
        return self

    @property
    def adaptive(self) -> bool:
        """True when the count may change (``max > min``)."""
        return self.max > self.min


class WarmupConfig(_Strict):
    """Synthetic requests run before a version is marked ready."""

    enabled: bool = Field(True, description="Run warm-up before marking the version ready.")
    batch_sizes: list[int] = Field(
        default_factory=lambda: [1], description="Row counts to warm up with."
    )
    iterations: int = Field(2, ge=1, le=100, description="Runs per batch size.")


class VersionPolicy(_Strict):
    """Which version folders are served: the latest N, a specific list, or all."""

    latest: int | None = Field(None, ge=1, description="Serve the N highest versions.")
    specific: list[int] | None = Field(None, description="Serve exactly these versions.")
    all: bool = Field(False, description="Serve every version found.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "all":
            return {"all": True}
        if value == "latest":
            return {"latest": 1}
        if isinstance(value, dict) and isinstance(value.get("latest"), dict):
            # Triton's spelling: {latest: {num_versions: 2}}
            return {**value, "latest": value["latest"].get("num_versions")}
        if isinstance(value, dict) and isinstance(value.get("specific"), dict):
            return {**value, "specific": value["specific"].get("versions")}
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> VersionPolicy:
        chosen = [self.latest is not None, self.specific is not None, self.all]
        if sum(chosen) > 1:
            raise ValueError("set only one of 'latest', 'specific' or 'all'")
        return self

    def select(self, available: list[int]) -> list[int]:
        """Return the versions to serve out of ``available``, ascending."""
        ordered = sorted(available)
        if self.all:
            return ordered
        if self.specific is not None:
            return [v for v in ordered if v in set(self.specific)]
        return ordered[-(self.latest or 1) :]


class ModelConfig(_Strict):
    """Everything ``model.yaml`` may say about a model."""

    name: str = Field(min_length=1, description="Model name; defaults to the folder name.")
    platform: Platform = Field(description="Framework the artifact was saved with.")
    inputs: list[TensorConfig] = Field(default_factory=list, description="Input tensors.")
    outputs: list[TensorConfig] = Field(default_factory=list, description="Output tensors.")
    max_batch_size: int = Field(
        32, ge=0, description="Most rows per batch; 0 or 1 turns dynamic batching off."
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    instances: InstancesConfig = Field(
        default_factory=InstancesConfig,
        description="Concurrent runtime calls per version: a count, or {min, max} to adapt.",
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="Placement.")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    version_policy: VersionPolicy = Field(default_factory=lambda: VersionPolicy(latest=1))
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Runtime options, e.g. intra_op_threads."
    )
    prediction_log_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Share of this model's requests kept in the prediction log (when the "
        "server has one, --prediction-log-uri); None: the server's --prediction-log-rate.",
    )
    cache: CacheConfig = Field(
        default_factory=CacheConfig, description="Prediction cache (off by default)."
    )
    precomputed: PrecomputedConfig = Field(
        default_factory=PrecomputedConfig,
        description="Answers published from batch jobs, by entity id (off by default).",
    )
    circuit_breaker: BreakerConfig | None = Field(
        None, description="Circuit breaker of each version; None: requests always go through."
    )
    fallback: FallbackConfig | None = Field(
        None, description="Versions and a default answer tried when a version fails."
    )
    overload: OverloadConfig = Field(
        default_factory=OverloadConfig,
        description="Adaptive concurrency limit and load shedding (off by default).",
    )
    preprocessing: PreprocessingConfig | None = Field(
        None,
        description="Named raw columns -> the model's input tensor (docs/preprocessing.md); "
        "None: requests carry the model's inputs.",
    )
    trust_pickle: bool = Field(
        False,
        description="Allow artifacts that run code when read (pickle, joblib, untrusted skops "
        "types). Only for models whose origin you trust.",
    )

    @field_validator("warmup", mode="before")
    @classmethod
    def _warmup_bool(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _unique_names(self) -> ModelConfig:
        for kind, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [t.name for t in tensors]
            if len(names) != len(set(names)):
                raise ValueError(f"{kind} names must be unique, got {names}")
        return self

    @property
    def batching_enabled(self) -> bool:
        return self.max_batch_size > 1


def _describe(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    problem = first["msg"]
    if first["type"] == "extra_forbidden":
        problem = "unknown field; check the spelling against the model.yaml reference"
    elif first["type"] == "missing":
        problem = "required field is missing"
    return field, problem


def parse_model_config(data: Any, source: str, default_name: str) -> ModelConfig:
    """Validate a parsed model.yaml mapping.

    Raises:
        ConfigError: naming ``source``, the field and the problem.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", f"expected a mapping, got {type(data).__name__}")
    data = {"name": default_name, **data}
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as err:
        field, problem = _describe(err)
        raise ConfigError(source, field, problem) from err


def load_model_config(path: Path, default_name: str) -> ModelConfig:
    """Read and validate a ``model.yaml`` file.

    Raises:
        ConfigError: the file is unreadable, not YAML, or has an invalid field.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(str(path), "(file)", f"cannot read: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(str(path), "(file)", f"not valid YAML: {err}") from err
    return parse_model_config(data, str(path), default_name)
