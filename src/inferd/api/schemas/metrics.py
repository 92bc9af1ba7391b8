"""Answer of ``GET /v1/models/{m}/metrics``: a model's traffic over the last minutes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from inferd.api.schemas._operation import Operation, Param

Milliseconds = float | None  # null without a successful request in the window


class Latency(BaseModel):
    """Percentiles of successful requests' latency, from the latency histogram's buckets
    (interpolated as Prometheus's histogram_quantile does; exact to a bucket)."""

    p50_ms: Milliseconds
    p95_ms: Milliseconds
    p99_ms: Milliseconds


class TrafficSummary(BaseModel):
    """One version's traffic in the window, or the model's (version null)."""

    version: str | None = Field(
        description="the version; null for the model as a whole, which also counts requests "
        "refused before a version was chosen"
    )
    requests: int = Field(description="answered requests, any status")
    request_rate: float = Field(description="requests per second over the window")
    errors: int = Field(description="answers with a 5xx status")
    client_errors: int = Field(description="answers with a 4xx status")
    error_rate: float | None = Field(description="errors / requests; null without requests")
    latency: Latency


class ModelMetrics(BaseModel):
    """A model's traffic over the last minutes, every worker's requests counted."""

    model: str
    window_s: float = Field(
        description="seconds covered: the requested window, or less when the answering "
        "process has not been up that long; whole 10-second snapshot steps"
    )
    requested_window_s: float
    total: TrafficSummary
    versions: list[TrafficSummary] = Field(description="versions with requests in the window")


MINUTES = Param(
    "minutes", "query", Annotated[float, Field(gt=0, le=60)], "the window, in minutes (default 5)"
)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/models/{model_name}/metrics", "model_metrics",
              "request rate, latency percentiles and error rate over the last minutes", "v1",
              {200: ModelMetrics}, params=(MINUTES,)),
)  # fmt: skip
