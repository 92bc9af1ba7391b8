"""Open Inference Protocol (KServe V2) REST bodies, with Triton's config and statistics.

Requests are described as loosely as :mod:`inferd.protocol.v2` accepts them (inputs are
checked against each model's signature there, which no generic schema can say); answers
as exactly as the data plane writes them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import Media, Operation, Param
from inferd.api.schemas.triton import ModelConfig, RepositoryEntry, Statistics

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
Parameters = dict[str, Any]
Absent = SkipJsonSchema[None]  # a field left out of the answer rather than null


class RequestInput(BaseModel):
    """An input tensor: values in ``data``, or raw bytes after the JSON header."""

    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: Datatype
    parameters: Parameters | Absent = Field(
        None, description="binary_data_size: the input's bytes follow the JSON header"
    )
    data: list[Any] | Absent = Field(None, description="row-major values, flat or nested")


class RequestOutput(BaseModel):
    """An output the caller wants, and how (``parameters.binary_data``)."""

    name: str
    parameters: Parameters | Absent = None


class InferenceRequest(BaseModel):
    """A V2 inference request."""

    id: str | Absent = None
    parameters: Parameters | Absent = Field(
        None,
        description="timeout (µs), priority, routing_key or user_id, binary_data_output, "
        "traffic_class (interactive or batch, for overload control); others are passed to "
        "the model",
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | Absent = None


class ResponseOutput(BaseModel):
    """An output tensor: values in ``data``, or ``parameters.binary_data_size`` raw bytes."""

    name: str
    datatype: Datatype
    shape: list[Annotated[int, Field(ge=0)]]
    data: list[Any] | Absent = None
    parameters: Parameters | Absent = None


class InferenceResponse(BaseModel):
    """A V2 inference answer; the ``X-Model-Version`` header repeats the version."""

    model_name: str
    model_version: str
    id: str | Absent = None
    parameters: Parameters | Absent = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """A tensor of the model's signature; -1 is a dynamic dimension."""

    name: str
    datatype: Datatype
    shape: list[Annotated[int, Field(ge=-1)]]


class VersionDetails(BaseModel):
    """inferd's additions to the V2 metadata: where and how the version runs here."""

    version: str
    state: str = Field(description="LOADING, READY, FAILED, UNLOADING, ...")
    device: str
    memory_bytes: int = Field(ge=0)
    max_batch_size: int
    queue_depth: int = Field(ge=0)
    instances: int = Field(ge=0, description="runtime calls the version may run at once now")
    instances_changed: str = Field(
        description="the last change of an adaptive count (from -> to, reason, numbers, "
        "when), empty when it never changed"
    )


class ModelMetadata(BaseModel):
    """V2 model metadata."""

    name: str
    versions: list[str] = Field(description="the versions ready here")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: VersionDetails


class ServerMetadata(BaseModel):
    """V2 server metadata."""

    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    """Whether the process is up."""

    live: bool


class Ready(BaseModel):
    """Whether the server can answer inference (the status is 503 when not)."""

    ready: bool


class ModelReady(BaseModel):
    """Whether the model can answer (the status is 503 when not)."""

    name: str
    ready: bool


class Empty(BaseModel):
    """An empty object: done."""


def _model_operations() -> list[Operation]:
    """The per-model operations, each for the model and for one version of it."""
    infer_body = Media({"application/json": InferenceRequest, "application/octet-stream": bytes})
    infer_answer = Media({"application/json": InferenceResponse, "application/octet-stream": bytes})
    header_length = Param(
        "Inference-Header-Content-Length", "header", Annotated[int, Field(ge=0)],
        "binary tensor extension: length of the JSON header before the raw tensors",
    )  # fmt: skip
    found: list[Operation] = []
    for prefix, scope, what in (
        ("/v2/models/{model_name}", "model", "the model"),
        ("/v2/models/{model_name}/versions/{model_version}", "model_version", "the version"),
    ):
        found += [
            Operation("GET", prefix, f"{scope}_metadata", f"{what}: metadata", "v2",
                      {200: ModelMetadata}),
            Operation("GET", f"{prefix}/ready", f"{scope}_ready",
                      f"whether {what} can answer (503 when not)", "v2",
                      {200: ModelReady, 503: ModelReady}),
            Operation("GET", f"{prefix}/config", f"{scope}_config",
                      f"{what}: configuration (Triton's model config as JSON)", "v2",
                      {200: ModelConfig}),
            Operation("GET", f"{prefix}/stats", f"{scope}_statistics",
                      f"{what}: inference statistics", "v2", {200: Statistics}),
            Operation("POST", f"{prefix}/infer", f"{scope}_infer", f"run inference on {what}",
                      "v2", {200: infer_answer}, body=infer_body, params=(header_length,)),
            Operation("POST", f"{prefix}/explain", f"{scope}_explain",
                      f"per-feature attributions of {what}'s score for each row (outputs "
                      "attributions and base_value; the infer body; docs/explanations.md)",
                      "v2", {200: infer_answer}, body=infer_body, params=(header_length,)),
        ]  # fmt: skip
    return found


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v2/health/live", "server_live", "the server process is up", "v2",
              {200: Live}),
    Operation("GET", "/v2/health/ready", "server_ready",
              "the server can answer inference (503 when not)", "v2", {200: Ready, 503: Ready}),
    Operation("GET", "/v2", "server_metadata", "server metadata", "v2", {200: ServerMetadata}),
    Operation("GET", "/v2/models/stats", "statistics", "statistics of every model", "v2",
              {200: Statistics}),
    *_model_operations(),
    Operation("POST", "/v2/repository/index", "repository_index", "models and their state here",
              "repository", {200: list[RepositoryEntry]}),
    Operation("POST", "/v2/repository/models/{model_name}/load", "repository_load",
              "load (or reload) a model", "repository", {200: Empty}),
    Operation("POST", "/v2/repository/models/{model_name}/unload", "repository_unload",
              "unload every version here", "repository", {200: Empty}),
)  # fmt: skip
