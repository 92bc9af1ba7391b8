"""What a user asks for when starting a canary rollout (``POST /v1/rollouts``).

A rollout moves a model from its baseline (by default the production version) to a candidate
through steps of canary share, each held for a minimum time and a minimum number of canary
requests, while guardrails compare the two arms over the same window. ``parse_rollout_spec``
turns validation failures into an :class:`InvalidInput` naming the field, what was expected
and what came. Whether the versions exist is checked against the registry by the service.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from inferd.errors import InvalidInput
from inferd.traffic.spec import Unit

DEFAULT_PERCENTS = (1.0, 5.0, 25.0, 50.0, 100.0)


class Step(BaseModel):
    """One step: the canary's share and how long and how much it must serve before the next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float = Field(gt=0.0, le=100.0, description="Canary share of the traffic, in %.")
    min_duration_s: float = Field(
        300.0, ge=0.0, description="Seconds the step lasts at least before the next."
    )
    min_requests: int = Field(
        100, ge=0, description="Canary requests the step must serve (all processes) first."
    )


class Guardrails(BaseModel):
    """Canary against baseline over the current step; any breach rolls the canary back.

    Errors are answers with status 500 or above (a client's bad input is nobody's fault).
    A limit set to null is not checked.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_requests: int = Field(
        50, ge=1, description="Requests an arm needs in the window before it is judged."
    )
    max_error_rate: float | None = Field(
        0.05, ge=0.0, le=1.0, description="Canary error rate above this is a breach."
    )
    max_error_rate_ratio: float | None = Field(
        2.0, ge=1.0, description="Canary error rate above this times the baseline's (and "
        "above it by error_rate_slack) is a breach.",
    )  # fmt: skip
    error_rate_slack: float = Field(
        0.01, ge=0.0, le=1.0, description="Absolute margin of the relative error check."
    )
    max_p99_ratio: float | None = Field(
        1.5, ge=1.0, description="Canary p99 latency above this times the baseline's (and "
        "above it by p99_slack_ms) is a breach.",
    )  # fmt: skip
    p99_slack_ms: float = Field(
        2.0, ge=0.0, description="Absolute margin of the p99 check, ms (noise on fast models)."
    )
    max_prediction_ks: float | None = Field(
        0.3, gt=0.0, le=1.0, description="Kolmogorov-Smirnov distance between the arms' "
        "sampled prediction means above this (and significant at ks_alpha) is a breach.",
    )  # fmt: skip
    ks_alpha: float = Field(0.001, gt=0.0, lt=0.5, description="Significance of the KS check.")


def _default_steps() -> list[Step]:
    return [Step(percent=p) for p in DEFAULT_PERCENTS]


class RolloutSpec(BaseModel):
    """A canary rollout of one model's candidate version."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(min_length=1, max_length=200, description="Registered model name.")
    candidate: int = Field(ge=1, description="The version being rolled out.")
    baseline: int | None = Field(
        None, ge=1, description="The version it replaces; default the production version."
    )
    name: str = Field("", max_length=200, description="A human-readable name.")
    description: str = Field("", max_length=2000)
    steps: list[Step] = Field(
        default_factory=_default_steps, min_length=1, max_length=50,
        description="Increasing canary shares ending at 100; default 1, 5, 25, 50, 100 %.",
    )  # fmt: skip
    guardrails: Guardrails = Field(default_factory=lambda: Guardrails())
    unit: Unit | None = Field(
        None, description="Route by a unit id (sticky); default each request on its own. "
        "Requests without the unit id are routed on their own.",
    )  # fmt: skip
    promote: bool = Field(True, description="Promote the candidate when the last step is done.")

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("candidate"):
            raise ValueError("a version other than the candidate")
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[Step]) -> list[Step]:
        percents = [s.percent for s in steps]
        if any(b <= a for a, b in pairwise(percents)):
            raise ValueError("step percents that increase")
        if percents[-1] != 100.0:
            raise ValueError("a last step of 100 percent")
        return steps


def parse_rollout_spec(data: Any) -> RolloutSpec:
    """Validate a rollout body.

    Raises:
        InvalidInput: naming the first bad field, e.g. ``rollout.steps[2].percent``.
    """
    if not isinstance(data, dict):
        raise InvalidInput("rollout", "a JSON object", type(data).__name__)
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        got = repr(first.get("input"))[:80] if first["type"] != "missing" else "nothing"
        expected = first["msg"].removeprefix("Value error, ").lower()
        raise InvalidInput(f"rollout{field}", expected, got) from err
