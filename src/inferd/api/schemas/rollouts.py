"""Bodies of ``/v1/rollouts``: the definition is :class:`inferd.traffic.rollout_spec.RolloutSpec`
itself, the model the server validates with, so the document cannot drift from it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import Operation, Param
from inferd.traffic.rollout_spec import RolloutSpec

Absent = SkipJsonSchema[None]  # a field that may be left out
Time = str | None  # ISO 8601; null while not yet
State = Literal["pending", "running", "paused", "rolled_back", "completed", "aborted"]
TAG = "rollouts"


class Breach(BaseModel):
    """A guardrail the canary broke."""

    guard: Literal["error_rate", "error_rate_ratio", "p99_latency_ratio", "prediction_shift"]
    canary: float
    baseline: float | None
    limit: float
    message: str


class RolloutOut(BaseModel):
    """A rollout: its definition, state, step, the canary's share and what happened."""

    id: str
    name: str
    model: str
    state: State
    spec: RolloutSpec
    baseline: int
    candidate: int
    step: int = Field(description="index into spec.steps")
    percent: float = Field(description="the canary's share now, % (0 unless running/paused)")
    percent_history: list[float] = Field(description="the share of each step taken, oldest first")
    reason: str = Field(description="why it ended (a breach names the guardrails)")
    breach: list[Breach] | None
    history: list[dict[str, Any]] = Field(description="events: at, event, actor, step, ...")
    created_by: str
    created_at: Time
    step_started_at: Time
    started_at: Time
    ended_at: Time
    updated_at: Time


class AbortBody(BaseModel):
    """Why the rollout is aborted."""

    reason: str | Absent = None


class ArmOut(BaseModel):
    """One arm over the current step, merged across every process."""

    requests: int = Field(ge=0)
    errors: int = Field(ge=0, description="answers with status 500 or above")
    error_rate: float | None
    latency_mean_ms: float | None
    latency_p99_ms: float | None
    prediction_mean: float | None = Field(description="mean of the answers' first output")
    predictions_sampled: int = Field(ge=0)


class GuardrailsOut(BaseModel):
    ok: bool
    breaches: list[Breach]


class NextOut(BaseModel):
    """What the controller does at its next look."""

    action: Literal["hold", "advance", "complete", "rollback"]
    wait_s: float = Field(
        description="running time until the step's minimum duration is met (paused time "
        "does not count)"
    )
    requests_needed: int = Field(description="canary requests the step still needs")
    step_active_s: float = Field(0.0, description="seconds the step has run, pauses excluded")


class RolloutStatus(BaseModel):
    """The current step's metrics per arm, the guardrails' verdict and the next move."""

    rollout: str
    model: str
    state: State
    step: int
    steps: int
    percent: float
    arms: dict[Literal["baseline", "canary"], ArmOut]
    guardrails: GuardrailsOut
    next: NextOut
    reason: str
    breach: list[Breach] | None


_ID = "/v1/rollouts/{rollout_id}"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/rollouts", "list_rollouts", "rollouts, newest first", TAG,
              {200: list[RolloutOut]},
              params=(Param("model", "query", str, "only this model's"),
                      Param("state", "query", State, "only those in this state"))),
    Operation("POST", "/v1/rollouts", "create_rollout",
              "create a canary rollout (the controller starts it)", TAG, {201: RolloutOut},
              body=RolloutSpec),
    Operation("GET", _ID, "get_rollout", "a rollout", TAG, {200: RolloutOut}),
    Operation("GET", f"{_ID}/status", "rollout_status",
              "per-arm metrics of the current step, guardrails, next move", TAG,
              {200: RolloutStatus}),
    Operation("POST", f"{_ID}/pause", "pause_rollout", "stop advancing (guardrails still apply)",
              TAG, {200: RolloutOut}),
    Operation("POST", f"{_ID}/resume", "resume_rollout", "advance again", TAG, {200: RolloutOut}),
    Operation("POST", f"{_ID}/advance", "advance_rollout",
              "the next step now (at the last, complete and promote)", TAG, {200: RolloutOut}),
    Operation("POST", f"{_ID}/abort", "abort_rollout", "end it; the canary's share goes to 0",
              TAG, {200: RolloutOut}, body=AbortBody, body_required=False),
)  # fmt: skip
