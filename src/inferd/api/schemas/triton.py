"""Triton's JSON shapes that inferd answers so Triton's tools work: model configuration,
statistics and the repository index (``perf_analyzer`` reads the first two)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema


class ConfigTensor(BaseModel):
    """A tensor in Triton's config: ``TYPE_FP32``-style type, dims without the batch."""

    name: str
    data_type: str = Field(description="TYPE_ and the V2 datatype (TYPE_STRING for BYTES)")
    dims: list[int]


class InstanceGroup(BaseModel):
    """Where and how many instances run."""

    name: str
    kind: str = Field(description="KIND_CPU or KIND_GPU")
    count: int = Field(ge=1)


class DynamicBatching(BaseModel):
    """The batcher's policy, present when dynamic batching is on."""

    preferred_batch_size: list[int]
    max_queue_delay_microseconds: int = Field(ge=0)


class ModelConfig(BaseModel):
    """The model's configuration in Triton's ``model_config`` JSON shape."""

    name: str
    platform: str
    backend: str
    version_policy: dict[str, dict[str, int]] = Field(description='{"latest": {"num_versions": N}}')
    max_batch_size: int = Field(ge=0, description="0: batching off")
    input: list[ConfigTensor]
    output: list[ConfigTensor]
    instance_group: list[InstanceGroup]
    dynamic_batching: DynamicBatching | SkipJsonSchema[None] = None


class Duration(BaseModel):
    """A count of events and their total time."""

    count: int = Field(ge=0)
    ns: int = Field(ge=0)


class BatchStats(BaseModel):
    """Executions of one batch size."""

    batch_size: int = Field(ge=1)
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration


class ModelStats(BaseModel):
    """Statistics of one version held here."""

    name: str
    version: str
    last_inference: int = Field(ge=0, description="milliseconds since the epoch; 0: never")
    inference_count: int = Field(ge=0)
    execution_count: int = Field(ge=0)
    inference_stats: dict[str, Duration] = Field(
        description="success, fail, queue, compute_input, compute_infer, compute_output, "
        "cache_hit, cache_miss"
    )
    batch_stats: list[BatchStats]


class Statistics(BaseModel):
    """Triton's statistics extension."""

    model_stats: list[ModelStats]


class RepositoryEntry(BaseModel):
    """A model, or one version of it held here, with its state."""

    name: str
    version: str | SkipJsonSchema[None] = None
    state: str = Field(description="READY, LOADING, FAILED, UNAVAILABLE, ...")
    reason: str | SkipJsonSchema[None] = None
