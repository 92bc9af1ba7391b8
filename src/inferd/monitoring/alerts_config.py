"""Alert rules and receivers, read from ``alerts.yaml`` (``--alerts-file``, ``INFERD_ALERTS_FILE``).

    evaluation_interval: 5s
    receivers:
      - {name: ops, kind: webhook, url: "http://hooks.example/inferd", group_by: [rule, model]}
      - {name: chat, kind: slack, url: "https://hooks.slack.com/services/..."}
    rules:
      - {name: HighP99Latency, kind: latency_p99, threshold: 500ms, window: 1m, for: 10s}
      - {name: HighErrorRate, kind: error_rate, threshold: 0.05, window: 5m, for: 1m}
      - {name: QueueBacklog, kind: queue_depth, threshold: 100, for: 30s}
      - {name: FeatureDrift, kind: drift}
      - {name: CanaryRolledBack, kind: canary_breach, resolve_after: 30m}
      - {name: ModelLoadFailed, kind: load_failure, window: 10m}
      - {name: BatchJobFailed, kind: job_failure, resolve_after: 1h}

Durations are numbers of seconds or text such as ``500ms``, ``30s``, ``5m``, ``1h``. Every
problem is reported as a :class:`~inferd.errors.ConfigError` naming the file, the rule (or
receiver) and field, what was expected and what came. docs/alerts.md describes every field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from inferd.errors import ConfigError

METRIC_KINDS = ("latency_p99", "error_rate", "queue_depth", "load_failure")
EVENT_KINDS = ("drift", "canary_breach", "job_failure")
RuleKind = Literal[
    "latency_p99", "error_rate", "queue_depth", "load_failure", "drift", "canary_breach",
    "job_failure",
]  # fmt: skip
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
DURATION_HELP = "a duration such as 500ms, 30s, 5m or 1h (or a number of seconds)"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a text duration (``500ms``, ``30s``, ``5m``, ``1h``)."""
    if isinstance(value, bool):
        raise ValueError(DURATION_HELP)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(DURATION_HELP)
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds >= 0:  # NaN too
        raise ValueError(DURATION_HELP + " that is not negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Receiver(BaseModel):
    """Where notifications go: a webhook taking inferd's JSON, or a Slack-compatible one."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["webhook", "slack"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    group_by: list[str] = Field(default_factory=lambda: ["rule"])
    send_resolved: bool = True
    repeat_interval: Duration = 4 * 3600.0
    max_attempts: int = Field(5, ge=1, le=100)
    backoff: Duration = 1.0
    timeout: Duration = 5.0


class Rule(BaseModel):
    """One alert rule. Metric rules compare a value per model version with ``threshold``
    over ``window``; event rules fire on drift, rollback and job events."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: RuleKind
    threshold: float | None = None
    window: Duration = 60.0
    for_s: Duration = Field(0.0, alias="for")
    min_requests: int = Field(1, ge=1)
    resolve_after: Duration = 1800.0
    severity: Literal["info", "warning", "critical"] = "warning"
    models: list[str] = Field(default_factory=list)
    receivers: list[str] | None = None
    summary: str = ""

    @model_validator(mode="before")
    @classmethod
    def _latency_threshold(cls, data: Any) -> Any:
        """A latency threshold is a duration (``500ms``); the others are plain numbers."""
        if isinstance(data, dict) and data.get("kind") == "latency_p99" and "threshold" in data:
            try:
                data = {**data, "threshold": parse_duration(data["threshold"])}
            except ValueError as err:
                raise ValueError(f"threshold: expected {err}, got {data['threshold']!r}") from None
        return data

    @model_validator(mode="after")
    def _needs_threshold(self) -> Rule:
        if self.kind in ("latency_p99", "error_rate", "queue_depth") and self.threshold is None:
            raise ValueError(f"threshold: expected a value for a {self.kind} rule, got none")
        if self.kind == "error_rate" and not 0 <= (self.threshold or 0.0) <= 1:
            raise ValueError(f"threshold: expected a share from 0 to 1, got {self.threshold}")
        if self.window <= 0:
            raise ValueError(f"window: expected a duration above 0, got {self.window}")
        return self

    def applies_to(self, model: str) -> bool:
        """Whether this rule watches ``model`` (every model without a ``models`` list)."""
        return not self.models or model in self.models


class AlertsConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    evaluation_interval: Duration = 5.0
    receivers: list[Receiver] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    def receivers_of(self, rule: Rule) -> list[Receiver]:
        """The receivers a rule notifies (all of them unless the rule names some)."""
        if rule.receivers is None:
            return list(self.receivers)
        return [r for r in self.receivers if r.name in rule.receivers]


def load_alerts(path: Path) -> AlertsConfig:
    """Read and validate an alerts file.

    Raises:
        ConfigError: naming the file, rule or receiver, field, what was expected and what came.
    """
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(source, "-", f"cannot read the alerts file: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(source, "-", f"expected YAML, got: {err}") from err
    return parse_alerts(data if data is not None else {}, source)


def parse_alerts(data: Any, source: str = "alerts.yaml") -> AlertsConfig:
    """Validate already-parsed YAML/JSON (see :func:`load_alerts`)."""
    if not isinstance(data, dict):
        raise ConfigError(source, "-", f"expected a mapping at the top, got {type(data).__name__}")
    try:
        config = AlertsConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, *_describe(err, data)) from None
    _cross_check(config, source)
    return config


def _cross_check(config: AlertsConfig, source: str) -> None:
    names = [r.name for r in config.receivers]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(source, f"receivers[{i}] ({name}).name", "expected a unique name, "
                              f"got {name!r} a second time")  # fmt: skip
    seen: set[str] = set()
    for i, rule in enumerate(config.rules):
        where = f"rules[{i}] ({rule.name})"
        if rule.name in seen:
            raise ConfigError(source, f"{where}.name", f"expected a unique name, got {rule.name!r} "
                              "a second time")  # fmt: skip
        seen.add(rule.name)
        for wanted in rule.receivers or []:
            if wanted not in names:
                raise ConfigError(source, f"{where}.receivers", f"expected one of {names}, got "
                                  f"{wanted!r}")  # fmt: skip


def _describe(err: ValidationError, data: dict[str, Any]) -> tuple[str, str]:
    """The first error as (field, "expected ..., got ...") with the rule or receiver named."""
    first = err.errors()[0]
    loc = list(first["loc"])
    parts: list[str] = []
    node: Any = data
    for step in loc:
        if isinstance(step, int):
            item = node[step] if isinstance(node, list) and step < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            parts[-1] += f"[{step}]" + (f" ({name})" if name else "")
            node = item
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        return ".".join(parts), "expected a value, got none"
    if first["type"] == "extra_forbidden":
        return ".".join(parts), "unknown field (see docs/alerts.md for the fields)"
    if ": expected" in message:  # a model validator's own "field: expected ..., got ..."
        field, _, problem = message.partition(": ")
        return ".".join([*parts, field]), problem
    for prefix, plain in (
        ("Input should be ", ""),
        ("String should match pattern ", "text matching "),
    ):
        if message.startswith(prefix):
            message = plain + message.removeprefix(prefix)
    return ".".join(parts), f"expected {message}, got {first.get('input')!r}"
