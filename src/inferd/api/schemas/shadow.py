"""Bodies of ``/v1/models/{m}/shadow``: the request body is
:class:`inferd.traffic.shadow_config.ShadowSpec` itself, the model the server validates with."""

from __future__ import annotations

from pydantic import BaseModel, Field

from inferd.api.schemas._operation import Operation
from inferd.traffic.shadow_config import ShadowSpec

TAG = "shadow"
Rate = float | None  # None until there is something to divide by


class ShadowOut(BaseModel):
    """A model's shadow target."""

    model: str
    version: int = Field(description="the shadow version")
    fraction: float = Field(ge=0.0, le=1.0)
    queue_size: int = Field(ge=1)
    updated_by: str
    updated_at: str | None = Field(description="ISO 8601")


class LatencyMs(BaseModel):
    """Milliseconds: the mean of all, p50 and p99 of a uniform sample (None without data)."""

    mean: Rate
    p50: Rate
    p99: Rate


class PairAgreement(BaseModel):
    """How the shadow version agrees with the version that answered the client."""

    primary_version: str = Field(description="the version that answered the client")
    shadow_version: str
    processes: int = Field(ge=1, description="serving processes whose sums were merged")
    sampled: int = Field(ge=0, description="mirrored + dropped")
    mirrored: int = Field(ge=0, description="queued for the shadow")
    compared: int = Field(ge=0)
    failed: int = Field(ge=0, description="the shadow raised (never seen by the client)")
    dropped: int = Field(ge=0, description="the shadow queue was full")
    incomparable: int = Field(ge=0, description="outputs differ in names or shapes")
    label_rows: int = Field(ge=0, description="rows compared as labels (integer/bytes, argmax)")
    exact_match_rate: Rate = Field(description="label rows that agree / label rows")
    values: int = Field(ge=0, description="float output elements compared")
    mean_abs_diff: Rate = Field(description="mean |primary - shadow| over those elements")
    max_abs_diff: Rate
    shadow_latency_ms: LatencyMs
    primary_latency_ms: LatencyMs


class ShadowResults(BaseModel):
    """Agreement per version pair, merged across every worker and replica."""

    model: str
    config: ShadowOut | None = Field(description="the current target; None when removed")
    pairs: list[PairAgreement]


_PATH = "/v1/models/{model_name}/shadow"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", _PATH, "get_shadow", "the model's shadow target", TAG, {200: ShadowOut}),
    Operation("PUT", _PATH, "set_shadow",
              "mirror a fraction of the model's requests to a version (operator)", TAG,
              {200: ShadowOut}, body=ShadowSpec),
    Operation("DELETE", _PATH, "delete_shadow", "stop mirroring (operator)", TAG,
              {200: ShadowOut}),
    Operation("GET", f"{_PATH}/results", "shadow_results", "agreement per version pair", TAG,
              {200: ShadowResults}),
)  # fmt: skip
