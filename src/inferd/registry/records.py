"""Plain records the registry returns: no database objects leak out of the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    """Where a version stands in its life cycle."""

    REGISTERED = "registered"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class Status(StrEnum):
    """What the servers found when they loaded the version."""

    REGISTERED = "registered"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One registered version of a model."""

    model: str
    version: int
    platform: str
    artifact_uri: str
    digest: str
    size_bytes: int
    stage: Stage
    status: Status
    status_reason: str = ""
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None  # model.yaml's block at registration
    pinned: bool = False
    registered_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    promoted_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "updated_at", "promoted_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        data["stage"] = self.stage.value
        data["status"] = self.status.value
        return data


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A model: its metadata, its config (model.yaml as a mapping) and promotion gates."""

    name: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    gates: list[str] = field(default_factory=list)
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    production_version: int | None = None
    latest_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "updated_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who did what to which model/version, from what to what."""

    at: datetime
    actor: str
    action: str
    model: str
    version: int | None
    from_value: str | None
    to_value: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data
