"""The registry's tables (SQLAlchemy Core), the current schema that migrations build.

models ─┬─< model_versions
        └─< audit_log (by name, so the log outlives deleted models)
registry_state: one row whose ``revision`` grows with every change; replicas poll it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("config", JSON, nullable=True),
    Column("gates", JSON, nullable=False, default=list),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("platform", String(50), nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("digest", String(71), nullable=False),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("signature", JSON, nullable=True),
    Column("metrics", JSON, nullable=False, default=dict),
    Column("tags", JSON, nullable=False, default=list),
    Column("description", Text, nullable=False, default=""),
    Column("training", JSON, nullable=False, default=dict),
    Column("stage", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text, nullable=False, default=""),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("registered_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("promoted_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("model_id", "version", name="uq_model_version"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(50), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=True),
    Column("from_value", Text, nullable=True),
    Column("to_value", Text, nullable=True),
    Column("detail", JSON, nullable=False, default=dict),
)

registry_state = Table(
    "registry_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", BigInteger, nullable=False),
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
