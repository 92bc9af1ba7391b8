"""Answer of ``GET /v1/alerts``: active alerts, history and the rules in force."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from inferd.api._request import MAX_LIMIT
from inferd.api.schemas._operation import Operation, Param

TAG = "v1"


class AlertOut(BaseModel):
    """One alert instance: a rule and its labels from pending or firing to resolved."""

    id: int
    rule: str = Field(description="the rule's name in alerts.yaml")
    kind: str = Field(description="latency_p99, error_rate, queue_depth, load_failure, drift, "
                      "canary_breach or job_failure")  # fmt: skip
    severity: Literal["info", "warning", "critical"]
    state: Literal["pending", "firing", "resolved"]
    labels: dict[str, str] = Field(description="model, version, rollout or job it is about")
    summary: str
    value: float | None = Field(
        description="the measured value (seconds for latency, a share for error rate); null "
        "for event rules"
    )
    fingerprint: str = Field(description="stable id of the rule and labels (deduplication)")
    started_at: str = Field(description="when the condition was first seen (ISO 8601)")
    fired_at: str | None
    resolved_at: str | None
    notified_at: str | None = Field(description="the last notification sent about it")


class RuleOut(BaseModel):
    """A rule from the alerts file."""

    name: str
    kind: str
    severity: str
    threshold: float | None
    window_s: float
    for_s: float


class AlertsOut(BaseModel):
    """Active alerts (pending and firing) and the history of alerts that fired."""

    evaluating: bool = Field(description="whether this server has an alerts file")
    rules: list[RuleOut]
    active: list[AlertOut] = Field(description="pending and firing, oldest first")
    history: list[AlertOut] = Field(description="fired alerts (firing or resolved), newest first")


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/alerts", "list_alerts", "active alerts and their history", TAG,
              {200: AlertsOut},
              params=(Param("limit", "query", Annotated[int, Field(ge=1, le=MAX_LIMIT)],
                            "history entries at most (default 100)"),
                      Param("rule", "query", str, "only this rule's alerts"))),
)  # fmt: skip
