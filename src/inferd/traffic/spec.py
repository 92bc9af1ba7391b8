"""What a user asks for when creating an A/B/n experiment (``POST /v1/experiments``).

``parse_spec`` turns validation failures into an :class:`InvalidInput` that names the field,
what was expected and what came; weights that do not sum to 1 are refused with their sum.
Whether the versions exist is checked against the registry by the experiment service.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferd.errors import InvalidInput
from inferd.traffic.router import check_weights

Metric = Literal["conversion", "value", "label", "error_rate", "latency_ms"]
UnitKind = Literal["user_id", "session", "header", "request"]
# Lower is better for these; higher for conversion and value.
LOWER_IS_BETTER = frozenset({"error_rate", "latency_ms"})
_GUARDS: tuple[Metric, ...] = ("error_rate", "latency_ms")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Variant(BaseModel):
    """One arm: a name, the model version it serves and its share of the units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, description="Variant name, e.g. control or treatment.")
    version: int = Field(ge=1, description="The model version this variant serves.")
    weight: float = Field(ge=0.0, le=1.0, description="Share of units; all weights sum to 1.")


class Unit(BaseModel):
    """Where a request's unit id comes from; one unit always lands on one variant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: UnitKind = Field(
        "user_id",
        description="user_id: /predict's user_id or the V2 parameter user_id (or routing_key); "
        "session: the V2 / predict parameter named by key; header: the HTTP header or gRPC "
        "metadata key named by key; request: every request on its own.",
    )
    key: str | None = Field(
        None, min_length=1, max_length=100,
        description="Parameter (session, default session_id) or header / metadata key (header).",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _lower_header(cls, data: Any) -> Any:
        # HTTP/2, ASGI and gRPC metadata carry header names in lower case.
        if (
            isinstance(data, dict)
            and data.get("kind") == "header"
            and isinstance(data.get("key"), str)
        ):
            return {**data, "key": data["key"].lower()}
        return data

    @model_validator(mode="after")
    def _key(self) -> Unit:
        if self.kind == "header" and not self.key:
            raise ValueError("unit.kind 'header' needs unit.key, the header name")
        return self


class ExperimentSpec(BaseModel):
    """An A/B/n experiment on one model.

    The first variant is the control: effects are measured against it, and requests without a
    unit id go to it unless ``fallback`` says otherwise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    name: str = Field(min_length=1, max_length=200, description="A human-readable name.")
    model: str = Field(min_length=1, max_length=200, description="Registered model name.")
    description: str = Field("", max_length=2000)
    variants: list[Variant] = Field(min_length=2, max_length=20, description="Control first.")
    unit: Unit = Field(default_factory=lambda: Unit(), description="The routing unit.")
    fallback: str = Field(
        "control",
        description="Requests without a unit id: 'control' (the first variant), a variant "
        "name, or 'exclude' (served by the model's default version, not counted).",
    )
    primary_metric: Metric = Field("conversion", description="The metric that decides.")
    guard_metrics: list[Metric] = Field(
        default_factory=lambda: list(_GUARDS),
        description="Metrics a winner must not make significantly worse.",
    )
    min_sample_size: int = Field(1000, ge=1, description="Observations per variant needed.")
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Significance level.")
    power: float = Field(0.8, ge=0.5, lt=1.0, description="Power the sample size was planned for.")
    max_duration_s: float = Field(
        14 * 86400.0, gt=0.0, description="The experiment stops by itself after this long running."
    )
    correction: Literal["holm", "bh"] = Field(
        "holm", description="Multiple-comparison correction across variants: Holm or BH."
    )
    exposure_sample_rate: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of routed requests with a request id kept in the exposure log, "
        "which outcomes posted by request id are joined with (1.0 to join every one).",
    )

    @model_validator(mode="after")
    def _variants(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.fallback not in ("control", "exclude", *names):
            raise ValueError(f"fallback must be 'control', 'exclude' or one of {names}")
        return self

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def fallback_index(self) -> int | None:
        """The variant requests without a unit id go to; None to leave them out."""
        if self.fallback == "exclude":
            return None
        if self.fallback == "control":
            return 0
        return self.variant_names.index(self.fallback)


def parse_spec(data: Any) -> ExperimentSpec:
    """Validate an experiment body.

    Raises:
        InvalidInput: naming the first bad field, e.g. ``experiment.variants[1].version``, or
            ``experiment.variants.weight`` with the weights and their sum.
    """
    if not isinstance(data, dict):
        raise InvalidInput("experiment", "a JSON object", type(data).__name__)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        got = repr(first.get("input"))[:80] if first["type"] != "missing" else "nothing"
        raise InvalidInput(f"experiment{field}", first["msg"].lower(), got) from err
    check_weights(spec.weights, "experiment.variants.weight")
    return spec
