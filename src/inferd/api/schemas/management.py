"""Bodies of the ``/v1`` management API: models, versions, stages and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import LIMIT, VERSION_NUMBER, Operation, Param
from inferd.registry.records import Stage

Absent = SkipJsonSchema[None]  # a field that may be left out
Time = str | None  # ISO 8601; null while not yet
_CONFIG = "model.yaml as JSON"


class RegisterVersion(BaseModel):
    """A new version: where its artifact is, and optionally its number, stage and config."""

    artifact_uri: str = Field(min_length=1, description="file://, s3://, gs://, ... or a path")
    version: Annotated[int, Field(ge=1)] | Absent = Field(
        None, description="default: the next number"
    )
    metadata: dict[str, Any] | Absent = Field(None, description="metrics, tags, training, ...")
    stage: Stage | Absent = Field(None, description="default: registered")
    config: dict[str, Any] | Absent = Field(None, description=_CONFIG)


class ModelChanges(BaseModel):
    """What to change in a model; at least one field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    description: str | Absent = None
    tags: list[str] | Absent = None
    gates: list[str] | Absent = Field(None, description="rules like 'accuracy >= 0.85'")
    config: dict[str, Any] | Absent = Field(None, description=_CONFIG)


class VersionChanges(BaseModel):
    """What to change in a version's metadata."""

    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, float] | Absent = None
    tags: list[str] | Absent = None
    description: str | Absent = None
    training: dict[str, Any] | Absent = None
    signature: dict[str, Any] | None = Field(None, description="null: read it from the artifact")
    pinned: bool | Absent = Field(None, description="pinned versions are never evicted")


class StageChange(BaseModel):
    """The stage to move the version to."""

    stage: Stage


class DefaultVersion(BaseModel):
    """The version to route the model's default traffic to."""

    version: int = Field(ge=1)


class ModelRecord(BaseModel):
    """A registered model."""

    name: str
    description: str
    tags: list[str]
    config: dict[str, Any] | None = Field(description=_CONFIG)
    gates: list[str]
    created_by: str
    created_at: Time
    updated_at: Time
    production_version: int | None
    latest_version: int | None


class VersionRecord(BaseModel):
    """A registered version of a model."""

    model: str
    version: int = Field(ge=1)
    platform: str
    artifact_uri: str
    digest: str = Field(description="SHA-256 of the artifact")
    size_bytes: int = Field(ge=0)
    stage: Stage
    status: Literal["registered", "ready", "failed"]
    status_reason: str
    signature: dict[str, Any] | None
    metrics: dict[str, float]
    tags: list[str]
    description: str
    training: dict[str, Any]
    preprocessing: dict[str, Any] | None = Field(
        None, description="model.yaml's preprocessing block when this version was registered"
    )
    pinned: bool
    registered_by: str
    created_at: Time
    updated_at: Time
    promoted_at: Time


class ServedVersion(VersionRecord):
    """A version, with its state in this process when it runs a model manager."""

    served: str | Absent = Field(None, description="READY, LOADING, ... or NOT_LOADED")


class ModelDetail(ModelRecord):
    """A model with its versions."""

    versions: list[ServedVersion]


class AuditEntry(BaseModel):
    """One change: who did what to which model or version, from what to what."""

    at: str
    actor: str
    action: str
    model: str
    version: int | None
    from_value: str | None
    to_value: str | None
    detail: dict[str, Any]


class Deleted(BaseModel):
    """What was deleted: the model, or ``model/version``."""

    deleted: str


def _stage(description: str) -> Param:
    return Param("stage", "query", Stage, description)


_MODEL = "/v1/models/{model_name}"
_VERSION = f"{_MODEL}/versions/{{model_version}}"
_V = (VERSION_NUMBER,)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/models", "list_models", "registered models", "v1",
              {200: list[ModelRecord]},
              params=(Param("tag", "query", str, "key=value"),
                      _stage("models with a version here"),
                      Param("q", "query", str, "substring of the name or description"))),
    Operation("GET", _MODEL, "get_model", "a model, its versions and their state here", "v1",
              {200: ModelDetail}),
    Operation("PATCH", _MODEL, "update_model", "change description, tags, gates or config",
              "v1", {200: ModelRecord}, body=ModelChanges),
    Operation("DELETE", _MODEL, "delete_model", "delete the model and its versions", "v1",
              {200: Deleted}),
    Operation("GET", f"{_MODEL}/versions", "list_versions", "versions of the model", "v1",
              {200: list[VersionRecord]},
              params=(_stage("only this stage"),
                      Param("metric", "query", str, "order by this metadata metric"))),
    Operation("POST", f"{_MODEL}/versions", "register_version", "register a version", "v1",
              {201: VersionRecord}, body=RegisterVersion),
    Operation("GET", _VERSION, "get_version", "one version", "v1", {200: VersionRecord},
              params=_V),
    Operation("PATCH", _VERSION, "update_version", "change the version's metadata", "v1",
              {200: VersionRecord}, body=VersionChanges, params=_V),
    Operation("DELETE", _VERSION, "delete_version", "delete the version", "v1", {200: Deleted},
              params=_V),
    Operation("POST", f"{_VERSION}/promote", "promote_version",
              "make the version production (hot swap, gates checked)", "v1",
              {200: VersionRecord}, params=_V),
    Operation("POST", f"{_VERSION}/stage", "set_stage", "move the version to a stage", "v1",
              {200: VersionRecord}, body=StageChange, params=_V),
    Operation("POST", f"{_VERSION}/archive", "archive_version", "archive the version", "v1",
              {200: VersionRecord}, params=_V),
    Operation("POST", f"{_MODEL}/default", "set_default_version",
              "route the model's default traffic to a version (a promotion)", "v1",
              {200: VersionRecord}, body=DefaultVersion),
    Operation("POST", f"{_MODEL}/rollback", "rollback",
              "return production to the previous production version", "v1",
              {200: VersionRecord}),
    Operation("GET", f"{_MODEL}/audit", "model_audit", "the model's audit log, newest first",
              "v1", {200: list[AuditEntry]}, params=(LIMIT,)),
    Operation("GET", "/v1/audit", "audit", "the audit log, newest first", "v1",
              {200: list[AuditEntry]}, params=(LIMIT,)),
)  # fmt: skip
