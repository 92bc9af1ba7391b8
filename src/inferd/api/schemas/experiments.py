"""Bodies of ``/v1/experiments``: the definition is :class:`inferd.traffic.spec.ExperimentSpec`
itself, the model the server validates with, so the document cannot drift from it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import Operation, Param
from inferd.traffic.spec import ExperimentSpec

Absent = SkipJsonSchema[None]  # a field that may be left out
Time = str | None  # ISO 8601; null while not yet
State = Literal["draft", "running", "paused", "concluded", "stopped"]
TAG = "experiments"


class ExperimentOut(BaseModel):
    """An experiment: its definition, state and the weights it routes with."""

    id: str
    name: str
    model: str
    state: State
    spec: ExperimentSpec
    weights: list[float] = Field(description="the current weights, one per variant")
    weight_history: list[list[float]] = Field(description="every weight vector, oldest first")
    weight_times: list[str] | None = Field(
        None, description="when each weight vector took effect (ISO 8601); null for old rows"
    )
    winner: str | None
    reason: str
    created_by: str
    created_at: Time
    started_at: Time
    ended_at: Time
    updated_at: Time


class StopBody(BaseModel):
    """Why the experiment stops."""

    reason: str | Absent = None


class ConcludeBody(BaseModel):
    """The winner (its version is promoted, gates apply) and why; no winner keeps production."""

    winner: str | None = Field(None, description="a variant name")
    reason: str | Absent = None


class WeightsBody(BaseModel):
    """New weights, one per variant, summing to 1."""

    weights: list[float] = Field(min_length=2)


class OutcomeIn(BaseModel):
    """One outcome, for a unit or a request (exactly one of the two)."""

    unit_id: str | int | Absent = None
    request_id: str | int | Absent = None
    kind: Literal["conversion", "value", "label"]
    value: float | Absent = Field(None, description="0 or 1 for a conversion; any number")
    label: str | int | Absent = Field(None, description="for kind label")


class OutcomeBatch(BaseModel):
    """Up to 10,000 outcomes (a bare list or a single outcome object are accepted too)."""

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=10_000)


class OutcomesAccepted(BaseModel):
    """How many were stored, and how many still wait for their request's exposure."""

    accepted: int = Field(ge=0)
    pending: int = Field(ge=0)


class VariantCount(BaseModel):
    name: str
    version: int
    weight: float
    requests: int = Field(ge=0)
    errors: int = Field(ge=0)


class Comparison(BaseModel):
    """A variant against the control on one metric."""

    variant: str
    effect: float | None
    ci: list[float | None] | None
    relative_lift: float | None
    relative_ci: list[float | None] | None
    p_value: float | None
    p_value_adjusted: float | None
    p_value_sequential: float | None = Field(
        description="always-valid (mSPRT) p-value: the running minimum over every look"
    )
    p_value_sequential_look: float | None = Field(
        None, description="this look's always-valid p-value, before the running minimum"
    )
    significant_sequential: bool = Field(
        False, description="p_value_sequential below alpha: safe to stop at any look"
    )
    p_value_rank: float | None = Field(None, description="Mann-Whitney U, latency_ms")
    significant: bool
    better: bool


class MetricResult(BaseModel):
    """One metric: per-variant observations and the comparisons with the control."""

    test: str
    primary: bool
    variants: list[dict[str, Any]] = Field(description="name, n, mean and variance (or counts)")
    comparisons: list[Comparison]
    p_value: float | None = Field(None, description="labels: variant x label chi-square")


class Srm(BaseModel):
    """Sample ratio mismatch: chi-square of the split against the weights, period by period."""

    p_value: float | None
    warning: bool = Field(description="p below the threshold: assignment is broken")
    threshold: float
    basis: Literal["units", "requests"] = Field(
        description="distinct units in the exposure log, or requests when it has too few"
    )
    observed: list[int] = Field(description="the counts tested, one per variant")
    expected: list[float] | None = Field(
        None, description="the counts the weights call for: each weight period's share summed"
    )
    periods: int = Field(1, description="weight periods the units were split by")


class SampleSize(BaseModel):
    minimum_per_variant: int
    reached: bool


class Results(BaseModel):
    """Per-variant counts, effects with intervals, p-values, sample size and SRM check."""

    experiment: str
    model: str
    state: State
    control: str
    variants: list[VariantCount]
    fallback_requests: int
    srm: Srm
    sample_size: SampleSize
    metrics: dict[str, MetricResult]
    guard_breaches: list[str]
    pending_outcomes: int


_ID = "/v1/experiments/{experiment_id}"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/experiments", "list_experiments", "experiments, newest first", TAG,
              {200: list[ExperimentOut]},
              params=(Param("model", "query", str, "only this model's"),
                      Param("state", "query", State, "only those in this state"))),
    Operation("POST", "/v1/experiments", "create_experiment", "create a draft experiment", TAG,
              {201: ExperimentOut}, body=ExperimentSpec),
    Operation("GET", _ID, "get_experiment", "an experiment", TAG, {200: ExperimentOut}),
    Operation("POST", f"{_ID}/start", "start_experiment", "start routing (loads the versions)",
              TAG, {200: ExperimentOut}),
    Operation("POST", f"{_ID}/pause", "pause_experiment", "pause routing", TAG,
              {200: ExperimentOut}),
    Operation("POST", f"{_ID}/resume", "resume_experiment", "resume routing", TAG,
              {200: ExperimentOut}),
    Operation("POST", f"{_ID}/stop", "stop_experiment", "end without a winner", TAG,
              {200: ExperimentOut}, body=StopBody, body_required=False),
    Operation("POST", f"{_ID}/conclude", "conclude_experiment",
              "end; a winner's version is promoted", TAG, {200: ExperimentOut},
              body=ConcludeBody, body_required=False),
    Operation("POST", f"{_ID}/weights", "set_experiment_weights", "change the weights", TAG,
              {200: ExperimentOut}, body=WeightsBody),
    Operation("GET", f"{_ID}/results", "experiment_results", "statistics per variant", TAG,
              {200: Results}),
    Operation("POST", f"{_ID}/outcomes", "post_outcomes",
              "attach conversions, values or labels to units or requests", TAG,
              {200: OutcomesAccepted}, body=OutcomeBatch | list[OutcomeIn] | OutcomeIn),
)  # fmt: skip
