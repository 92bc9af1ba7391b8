"""The registry store: models, versions, stages and the audit log in one SQL database.

Every change runs in one transaction that also writes its audit entry and bumps the
registry revision, so a change is applied whole or not at all, and replicas that poll the
revision see it. The API is synchronous (SQLAlchemy); the server calls it in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from inferd.errors import (
    Conflict,
    InvalidInput,
    ModelNotFound,
    PromotionRefused,
    RegistryUnavailable,
)
from inferd.registry import schema
from inferd.registry.fields import metadata_fields, model_fields, parse_stage
from inferd.registry.gates import failed_gates, parse_gate
from inferd.registry.migrations import migrate
from inferd.registry.records import AuditEntry, ModelRecord, Stage, Status, VersionRecord

logger = logging.getLogger(__name__)

M, V, A = schema.models, schema.model_versions, schema.audit_log

# libpq bounds on a PostgreSQL server that stops answering without refusing (a network
# partition, a frozen host), so a registry call fails with RegistryUnavailable instead of
# hanging: a new connection gives up after connect_timeout seconds; data sent and not
# acknowledged for tcp_user_timeout ms, or a peer silent to keepalive probes (~11 s), drops
# the connection. Parameters in the registry URL win.
POSTGRES_TIMEOUTS: dict[str, int] = {
    "connect_timeout": 5, "tcp_user_timeout": 10_000, "keepalives": 1, "keepalives_idle": 5,
    "keepalives_interval": 2, "keepalives_count": 3,
}  # fmt: skip


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # DBAPI paramstyles


def engine_for(url: str) -> Engine:
    """An engine for a registry URL; ``postgresql://`` uses psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":  # a fresh INFERD_HOME or --registry-url path
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    timeouts = postgres_args(url) if url.startswith("postgresql") else {}
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=timeouts
    )


def postgres_args(url: str) -> dict[str, int]:
    """The libpq timeouts (:data:`POSTGRES_TIMEOUTS`) that the URL does not set itself."""
    given = make_url(url).query
    return {name: value for name, value in POSTGRES_TIMEOUTS.items() if name not in given}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets several server processes read while one writes; foreign keys for cascades.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """Models, versions, stages, gates and audit log.

    Args:
        url: SQLAlchemy-style URL (``sqlite:///path``, ``postgresql://user@host/db``).
        migrate_schema: apply pending migrations on start.
    """

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = engine_for(url)
        if migrate_schema:
            self.migrate()

    def migrate(self) -> int:
        """Apply pending schema migrations; returns the schema version."""
        with self._guard():
            return migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def placeholder(self) -> str:
        """The driver's positional parameter mark (``?`` for SQLite, ``%s`` for psycopg),
        for the few statements sent as plain SQL (``Connection.exec_driver_sql``) where
        the Core statement's per-row work was measured to cost more than the query."""
        return _PLACEHOLDER.get(self.engine.dialect.paramstyle, "?")

    # -- reads -------------------------------------------------------------------------------

    def revision(self) -> int:
        """A number that grows with every change; cheap to poll."""
        with self._read() as conn:
            return int(conn.execute(select(schema.registry_state.c.revision)).scalar_one())

    def get_model(self, name: str) -> ModelRecord:
        """Raises ModelNotFound."""
        with self._read() as conn:
            return self._model_record(conn, self._model_row(conn, name))

    def list_models(
        self, *, tag: str | None = None, stage: str | None = None, query: str | None = None
    ) -> list[ModelRecord]:
        """Models, optionally those with a tag, a version in a stage, or a name match."""
        with self._read() as conn:
            stmt = select(M).order_by(M.c.name)
            if query:
                stmt = stmt.where(M.c.name.contains(query))
            if stage:
                stage_ = parse_stage(stage)
                stmt = stmt.where(M.c.id.in_(select(V.c.model_id).where(V.c.stage == stage_)))
            rows = [r for r in conn.execute(stmt) if tag is None or tag in (r.tags or [])]
            return [self._model_record(conn, r) for r in rows]

    def get_version(self, name: str, version: int) -> VersionRecord:
        """Raises ModelNotFound."""
        with self._read() as conn:
            return _version_record(name, self._version_row(conn, name, version))

    def list_versions(
        self, name: str, *, stage: str | None = None, metric: str | None = None
    ) -> list[VersionRecord]:
        """Versions of a model, ascending; filter by stage or a rule like ``accuracy>=0.9``."""
        with self._read() as conn:
            model = self._model_row(conn, name)
            stmt = select(V).where(V.c.model_id == model.id).order_by(V.c.version)
            if stage:
                stmt = stmt.where(V.c.stage == parse_stage(stage))
            records = [_version_record(name, r) for r in conn.execute(stmt)]
        if metric:
            parse_gate(metric)
            records = [r for r in records if not failed_gates([metric], r.metrics)]
        return records

    def audit(self, name: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first, for one model or all."""
        with self._read() as conn:
            stmt = select(A).order_by(A.c.id.desc()).limit(limit)
            if name is not None:
                stmt = stmt.where(A.c.model == name)
            return [
                AuditEntry(r.at, r.actor, r.action, r.model, r.version, r.from_value,
                           r.to_value, r.detail or {})
                for r in conn.execute(stmt)
            ]  # fmt: skip

    # -- model changes -----------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: list[str] | None = None,
        config: dict[str, Any] | None = None, gates: list[str] | None = None, actor: str = "",
    ) -> ModelRecord:  # fmt: skip
        """Raises Conflict when the model exists."""
        for rule in gates or []:
            parse_gate(rule)
        with self._write() as conn:
            now = _now()
            try:
                conn.execute(
                    M.insert().values(
                        name=name, description=description, tags=tags or [], config=config,
                        gates=gates or [], created_by=actor, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
            except IntegrityError as err:
                raise Conflict(f"model '{name}' exists already") from err
            self.record_audit(conn, actor, "create_model", name, None, None, None)
            return self._model_record(conn, self._model_row(conn, name))

    def update_model(self, name: str, *, actor: str = "", **changes: Any) -> ModelRecord:
        """Change description, tags, config or gates."""
        changes = model_fields(name, changes)
        with self._write() as conn:
            row = self._model_row(conn, name)
            conn.execute(M.update().where(M.c.id == row.id).values(**changes, updated_at=_now()))
            detail = {k: v for k, v in changes.items() if k != "config"}
            self.record_audit(conn, actor, "update_model", name, None, None, None, detail)
            return self._model_record(conn, self._model_row(conn, name))

    def ensure_model(self, name: str, config: dict[str, Any], actor: str = "") -> ModelRecord:
        """Create the model or update its config when it changed (repository import)."""
        try:
            current = self.get_model(name)
        except ModelNotFound:
            try:
                return self.create_model(name, config=config, actor=actor)
            except Conflict:  # another replica won the race
                current = self.get_model(name)
        if current.config != config:
            return self.update_model(name, config=config, actor=actor)
        return current

    def delete_model(self, name: str, *, actor: str = "") -> None:
        """Delete a model and its versions. Raises Conflict while one is in production."""
        with self._write() as conn:
            row = self._model_row(conn, name)
            serving = conn.execute(
                select(V.c.version).where(V.c.model_id == row.id, V.c.stage == Stage.PRODUCTION)
            ).scalar()
            if serving is not None:
                raise Conflict(
                    f"model '{name}': version {serving} serves production traffic; archive it first"
                )
            conn.execute(V.delete().where(V.c.model_id == row.id))
            conn.execute(M.delete().where(M.c.id == row.id))
            self.record_audit(conn, actor, "delete_model", name, None, None, None)

    # -- version changes ---------------------------------------------------------------------

    def register_version(
        self, name: str, *, platform: str, artifact_uri: str, digest: str, size_bytes: int,
        version: int | None = None, stage: str = "registered", actor: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> VersionRecord:  # fmt: skip
        """Add a version (the next number unless given), with the model's current
        ``preprocessing`` block. Raises Conflict when it exists."""
        stage_ = parse_stage(stage)
        if stage_ in (Stage.PRODUCTION, Stage.ARCHIVED):
            raise InvalidInput("stage", "'registered' or 'staging' at registration", stage)
        fields = metadata_fields(metadata or {})
        with self._write() as conn:
            model = self._model_row(conn, name)
            if version is None:
                top = conn.execute(
                    select(func.max(V.c.version)).where(V.c.model_id == model.id)
                ).scalar()
                version = (top or 0) + 1
            if version < 1:
                raise InvalidInput("version", "a positive integer", str(version))
            now = _now()
            try:
                conn.execute(
                    V.insert().values(
                        model_id=model.id, version=version, platform=platform,
                        artifact_uri=artifact_uri, digest=digest, size_bytes=size_bytes,
                        stage=stage_, status=Status.REGISTERED, registered_by=actor,
                        created_at=now, updated_at=now, **fields,
                        # Versioned with the model: later config edits leave this version's.
                        preprocessing=(model.config or {}).get("preprocessing"),
                    )
                )  # fmt: skip
            except IntegrityError as err:
                raise Conflict(f"model '{name}' version {version} exists already") from err
            self.record_audit(
                conn, actor, "register", name, version, None, stage_, {"uri": artifact_uri}
            )
            return _version_record(name, self._version_row(conn, name, version))

    def update_version(
        self, name: str, version: int, *, actor: str = "", **metadata: Any
    ) -> VersionRecord:
        """Change a version's metrics, tags, description, training info, signature or pin."""
        fields = metadata_fields(metadata)
        with self._write() as conn:
            row = self._version_row(conn, name, version)
            conn.execute(V.update().where(V.c.id == row.id).values(**fields, updated_at=_now()))
            self.record_audit(conn, actor, "update_version", name, version, None, None,
                      {k: v for k, v in fields.items() if k != "signature"})  # fmt: skip
            return _version_record(name, self._version_row(conn, name, version))

    def set_stage(self, name: str, version: int, stage: str, *, actor: str = "") -> VersionRecord:
        """Move a version to a stage. Production archives the previous production version
        in the same transaction, after the model's gates and the version's status allow it.

        Raises:
            PromotionRefused: a gate fails or the version failed to load.
            InvalidInput: unknown stage.
        """
        target = parse_stage(stage)
        with self._write() as conn:
            return self._set_stage(conn, name, version, target, actor)

    def promote(self, name: str, version: int, *, actor: str = "") -> VersionRecord:
        """Make a version the production one (see ``set_stage``)."""
        return self.set_stage(name, version, Stage.PRODUCTION, actor=actor)

    def rollback(self, name: str, *, actor: str = "") -> VersionRecord:
        """Return production to the version that was in production before the current one.

        Raises:
            Conflict: there is no earlier production version.
        """
        with self._write() as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                select(V)
                .where(V.c.model_id == model.id, V.c.promoted_at.is_not(None))
                .order_by(V.c.promoted_at.desc(), V.c.id.desc())
            ).all()
            current = next((r for r in rows if r.stage == Stage.PRODUCTION), None)
            earlier = [r for r in rows if r is not current and r.status != Status.FAILED]
            if not earlier:
                raise Conflict(f"model '{name}': no earlier production version to roll back to")
            record = self._set_stage(conn, name, earlier[0].version, Stage.PRODUCTION, actor)
            before = str(current.version) if current is not None else None
            self.record_audit(
                conn, actor, "rollback", name, record.version, before, str(record.version)
            )
            return record

    def _set_stage(
        self, conn: Connection, name: str, version: int, target: Stage, actor: str
    ) -> VersionRecord:
        model = self._model_row(conn, name)
        row = self._version_row(conn, name, version)
        if row.stage == target:
            return _version_record(name, row)
        now = _now()
        values: dict[str, Any] = {"stage": target, "updated_at": now}
        if target is Stage.PRODUCTION:
            self._check_promotion(name, model, row)
            conn.execute(
                V.update()
                .where(V.c.model_id == model.id, V.c.stage == Stage.PRODUCTION)
                .values(stage=Stage.ARCHIVED, updated_at=now)
            )
            values["promoted_at"] = now
        conn.execute(V.update().where(V.c.id == row.id).values(**values))
        self.record_audit(conn, actor, "stage", name, version, row.stage, target)
        return _version_record(name, self._version_row(conn, name, version))

    def delete_version(self, name: str, version: int, *, actor: str = "") -> None:
        """Raises Conflict while the version is in production."""
        with self._write() as conn:
            row = self._version_row(conn, name, version)
            if row.stage == Stage.PRODUCTION:
                raise Conflict(
                    f"model '{name}' version {version} serves production traffic; promote "
                    "another version or archive it first"
                )
            conn.execute(V.delete().where(V.c.id == row.id))
            self.record_audit(conn, actor, "delete_version", name, version, row.stage, None)

    def set_status(self, name: str, version: int, status: Status, reason: str = "") -> None:
        """Record what a server found loading the version.

        Not a user change: no audit entry, and the revision stays, so replicas reporting the
        same status do not wake each other up.
        """
        with self._write(bump=False) as conn:
            row = self._version_row(conn, name, version)
            if row.status == status and row.status_reason == reason:
                return
            conn.execute(
                V.update().where(V.c.id == row.id).values(status=status, status_reason=reason)
            )

    def snapshot(self) -> tuple[dict[str, ModelRecord], list[VersionRecord]]:
        """Every model and every version, read in one transaction (the desired state)."""
        with self._read() as conn, conn.begin():
            models = {r.name: self._model_record(conn, r) for r in conn.execute(select(M))}
            rows = conn.execute(
                select(M.c.name, V).join(V, V.c.model_id == M.c.id).order_by(M.c.name, V.c.version)
            )
            return models, [_version_record(r.name, r) for r in rows]

    # -- internals ---------------------------------------------------------------------------

    def _check_promotion(self, name: str, model: Row[Any], row: Row[Any]) -> None:
        if row.status == Status.FAILED:
            raise PromotionRefused(name, row.version, f"it failed to load: {row.status_reason}")
        failures = failed_gates(list(model.gates or []), row.metrics or {})
        if failures:
            raise PromotionRefused(name, row.version, "; ".join(failures))

    def connection(self) -> AbstractContextManager[Connection]:
        """A read connection for stores that share the registry database (e.g. API keys)."""
        return self._read()

    def transaction(self, bump: bool = True) -> AbstractContextManager[Connection]:
        """A write transaction; ``bump`` moves the revision so replicas notice the change."""
        return self._write(bump)

    def _guard(self) -> AbstractContextManager[None]:
        return database_errors()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, bump: bool = True) -> Iterator[Connection]:
        with self._guard(), self.engine.begin() as conn:
            yield conn
            if bump:
                state = schema.registry_state
                conn.execute(update(state).values(revision=state.c.revision + 1))

    def record_audit(
        self, conn: Connection, actor: str, action: str, model: str, version: int | None,
        before: str | None, after: str | None, detail: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Add an audit entry in the caller's transaction ``conn`` (the stores of experiments,
        rollouts, shadows and tables write theirs with the change they record), so an entry
        exists exactly when its change was committed. :meth:`audit` reads them."""
        conn.execute(
            A.insert().values(
                at=_now(), actor=actor or "anonymous", action=action, model=model,
                version=version, from_value=before, to_value=after, detail=detail or {},
            )
        )  # fmt: skip

    def _model_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(M).where(M.c.name == name)).first()
        if row is None:
            known = list(conn.execute(select(M.c.name).order_by(M.c.name)).scalars())
            raise ModelNotFound(name, known=known)
        return row

    def _version_row(self, conn: Connection, name: str, version: int) -> Row[Any]:
        model = self._model_row(conn, name)
        row = conn.execute(
            select(V).where(V.c.model_id == model.id, V.c.version == version)
        ).first()
        if row is None:
            raise ModelNotFound(name, str(version))
        return row

    def _model_record(self, conn: Connection, row: Row[Any]) -> ModelRecord:
        stats = conn.execute(select(V.c.version, V.c.stage).where(V.c.model_id == row.id)).all()
        production = next((v for v, s in stats if s == Stage.PRODUCTION), None)
        latest = max((v for v, _ in stats), default=None)
        return ModelRecord(
            name=row.name, description=row.description, tags=list(row.tags or []),
            config=row.config, gates=list(row.gates or []), created_by=row.created_by,
            created_at=row.created_at, updated_at=row.updated_at,
            production_version=production, latest_version=latest,
        )  # fmt: skip


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn "cannot reach the database" errors into RegistryUnavailable (503); any store on
    the registry database (models, jobs, keys) wraps its calls in this."""
    try:
        yield
    except (OperationalError, InterfaceError) as err:
        raise RegistryUnavailable(_first_line(err)) from err
    except DBAPIError as err:
        if err.connection_invalidated:
            raise RegistryUnavailable(_first_line(err)) from err
        raise


def _first_line(err: DBAPIError) -> str:
    text = str(err.orig).strip() or type(err.orig).__name__
    return text.splitlines()[0][:200]


def _version_record(name: str, row: Row[Any]) -> VersionRecord:
    return VersionRecord(
        model=name, version=row.version, platform=row.platform, artifact_uri=row.artifact_uri,
        digest=row.digest, size_bytes=row.size_bytes, stage=Stage(row.stage),
        status=Status(row.status), status_reason=row.status_reason, signature=row.signature,
        metrics=dict(row.metrics or {}), tags=list(row.tags or []), description=row.description,
        training=dict(row.training or {}), preprocessing=row.preprocessing,
        pinned=bool(row.pinned),
        registered_by=row.registered_by, created_at=row.created_at, updated_at=row.updated_at,
        promoted_at=row.promoted_at,
    )  # fmt: skip
