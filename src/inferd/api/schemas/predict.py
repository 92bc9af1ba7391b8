"""The simple ``/predict`` bodies, for callers who do not want the V2 protocol."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import Operation

Absent = SkipJsonSchema[None]  # a field that may be left out


class PredictRequest(BaseModel):
    """Inputs by name; datatypes come from the model's signature."""

    model_name: str = Field(min_length=1)
    model_version: int | str | Absent = Field(None, description="default: the routed version")
    input_data: dict[str, Any] | Absent = Field(
        None,
        description="input name -> values (numbers, booleans or strings, nested lists of "
        "them); required unless instances is given",
    )
    instances: list[dict[str, Any]] | Absent = Field(
        None,
        description="instead of input_data, rows: input name -> that row's value (KServe V1 "
        "style); an absent key or null is a missing value (docs/preprocessing.md)",
    )
    user_id: str | Absent = Field(None, description="routing key of experiments and canaries")
    request_id: str | Absent = Field(None, description="default: a fresh random id")
    parameters: dict[str, Any] | Absent = Field(
        None,
        description="timeout_ms (> 0), priority (>= 0), traffic_class (interactive or batch); "
        "others are passed to the model",
    )


class BatchInfo(BaseModel):
    """The batch the request ran in."""

    batch_size: int = Field(ge=1)
    wait_time_ms: float = Field(ge=0)
    position_in_batch: int = Field(ge=0)


class PredictResponse(BaseModel):
    """Predictions by output name, nested like the output's shape."""

    request_id: str
    model_name: str
    model_version: str
    predictions: dict[str, Any]
    latency_ms: float = Field(ge=0)
    batch_info: BatchInfo


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/predict",
        "predict",
        "simple JSON inference",
        "predict",
        {200: PredictResponse},
        body=PredictRequest,
    ),
)
