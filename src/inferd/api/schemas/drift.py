"""Bodies of the drift routes: settings are :class:`inferd.monitoring.drift_check.DriftSettings`
itself, the model the server validates with."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import Operation, Param
from inferd.monitoring.drift_check import DriftSettings

Absent = SkipJsonSchema[None]
TAG = "drift"
Status = Literal["ok", "drift", "insufficient_data", "no_reference", "collecting"]


class FeatureDriftOut(BaseModel):
    """One feature's test in one check."""

    name: str
    kind: Literal["input", "output"]
    test: Literal["ks", "chi_square"]
    statistic: float
    p_value: float
    p_adjusted: float = Field(description="corrected over every test of the check")
    psi: float
    drifted: bool


class MultivariateOut(BaseModel):
    """The MMD permutation test over the numeric features."""

    test: Literal["mmd"]
    statistic: float
    p_value: float
    p_adjusted: float
    drifted: bool
    samples: list[int] = Field(description="rows per side (reference, window)")


class VersionDriftOut(BaseModel):
    """The latest check of one version."""

    model: str
    version: int
    status: Status
    drifted: bool
    checked_at: float = Field(description="seconds since the epoch")
    samples: int = Field(ge=0, description="window rows tested")
    features: list[FeatureDriftOut]
    multivariate: MultivariateOut | None
    reference: dict[str, Any] | None = Field(description="source, rows, created_at")
    window: dict[str, Any] | Absent = Field(None, description="start, seen (rows sampled)")
    alpha: float | Absent = None
    correction: Literal["holm", "bh"] | Absent = None
    psi_threshold: float | None = None
    missing: list[str] | Absent = Field(None, description="reference features never sampled")


class DriftOut(BaseModel):
    """A model's drift: its settings and the latest check of every watched version."""

    model: str
    settings: DriftSettings
    versions: list[VersionDriftOut]


class FeatureSummary(BaseModel):
    kind: Literal["numeric", "categorical"]
    count: int
    missing: int
    mean: float
    std: float
    categories: int


class ReferenceOut(BaseModel):
    """A version's reference profile, summarised."""

    model: str
    version: int
    source: Literal["dataset", "traffic"]
    rows: int
    created_at: str
    inputs: dict[str, FeatureSummary]
    outputs: dict[str, FeatureSummary]


class ReferenceBody(BaseModel):
    """Exactly one of ``uri`` (a .csv or .parquet file the server reads), ``profile`` (as
    ``inferd models register --reference`` computes it) or ``data`` (columns, small sets)."""

    uri: str | Absent = None
    profile: dict[str, Any] | Absent = None
    data: dict[str, list[Any]] | Absent = None
    categorical: list[str] | Absent = Field(None, description="numeric columns that are not")


_M = "/v1/models/{model_name}"
_REF = f"{_M}/versions/{{model_version}}/reference"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", f"{_M}/drift", "model_drift",
              "drift of every watched version (the latest check, or a new one)", TAG,
              {200: DriftOut},
              params=(Param("version", "query", int, "only this version"),
                      Param("refresh", "query", bool,
                            "check now even when the stored check is recent"))),
    Operation("GET", f"{_M}/drift/settings", "get_drift_settings", "the model's drift settings",
              TAG, {200: DriftSettings}),
    Operation("PUT", f"{_M}/drift/settings", "set_drift_settings",
              "change drift settings (fields left out are kept)", TAG, {200: DriftSettings},
              body=dict[str, Any]),
    Operation("GET", _REF, "get_reference", "a version's drift reference profile", TAG,
              {200: ReferenceOut}),
    Operation("PUT", _REF, "set_reference", "set a version's drift reference", TAG,
              {200: ReferenceOut}, body=ReferenceBody),
)  # fmt: skip
