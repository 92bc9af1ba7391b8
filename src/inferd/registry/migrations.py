"""Versioned schema migrations, applied in order, each in its own transaction.

A migration is a function of a Connection. The applied ones are recorded in
``schema_migrations``; ``migrate`` applies the rest. Several replicas starting at once are
safe: on PostgreSQL an advisory lock serialises them, on SQLite a lock file beside the
database does.
Never edit a released migration: add a new one.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect, select, text

from inferd.registry import schema

logger = logging.getLogger(__name__)

Migration = tuple[int, str, Callable[[Connection], None]]
_LOCK_KEY = 7_262_011  # advisory lock id for migrations (any constant unique to inferd)


def _initial(conn: Connection) -> None:
    tables = [
        schema.models,
        schema.model_versions,
        schema.audit_log,
        schema.registry_state,
    ]
    schema.metadata.create_all(conn, tables=tables)
    conn.execute(schema.registry_state.insert().values(id=1, revision=0))


def _indexes(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_versions_stage ON model_versions (stage)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_audit_model ON audit_log (model, at)"))


def _jobs(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.jobs, schema.job_chunks])
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_jobs_state ON jobs (state)"))


def _api_keys(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.api_keys])


def _experiments(conn: Connection) -> None:
    tables = [
        schema.experiments,
        schema.experiment_aggregates,
        schema.experiment_outcomes,
        schema.experiment_exposures,
    ]
    schema.metadata.create_all(conn, tables=tables)
    for statement in (
        "CREATE INDEX IF NOT EXISTS ix_experiments_state ON experiments (state)",
        "CREATE INDEX IF NOT EXISTS ix_outcomes_experiment ON experiment_outcomes "
        "(experiment_id, variant)",
        "CREATE INDEX IF NOT EXISTS ix_exposures_request ON experiment_exposures "
        "(experiment_id, request_id)",
    ):
        conn.execute(text(statement))


def _drift(conn: Connection) -> None:
    tables = [schema.drift_settings, schema.drift_profiles, schema.drift_samples,
              schema.drift_results]  # fmt: skip
    schema.metadata.create_all(conn, tables=tables)
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_drift_samples_at ON drift_samples (model, version, at)")
    )


def _rollouts(conn: Connection) -> None:
    schema.metadata.create_all(
        conn, tables=[schema.rollouts, schema.rollout_aggregates, schema.leases]
    )
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_rollouts_state ON rollouts (state)"))


def _shadows(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.shadows, schema.shadow_aggregates])


def _alerts(conn: Connection) -> None:
    tables = [schema.alerts, schema.alert_signals, schema.alert_notifications]
    schema.metadata.create_all(conn, tables=tables)
    for statement in (
        "CREATE INDEX IF NOT EXISTS ix_alerts_state ON alerts (state, fingerprint)",
        "CREATE INDEX IF NOT EXISTS ix_alert_signals_consumed ON alert_signals (consumed)",
        "CREATE INDEX IF NOT EXISTS ix_alert_notifications_state ON alert_notifications (state)",
    ):
        conn.execute(text(statement))


def _sequential(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.experiment_sequential])


def _precomputed(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.precomputed_tables, schema.precomputed_rows])
    conn.execute(
        text(
            "CREATE INDEX IF NOT EXISTS ix_precomputed_tables_version "
            "ON precomputed_tables (model, version, state)"
        )
    )


def _weight_times(conn: Connection) -> None:
    # Migration 11 builds the current table, which has the column already on a new database.
    if "weight_times" not in {c["name"] for c in inspect(conn).get_columns("experiments")}:
        conn.execute(text("ALTER TABLE experiments ADD COLUMN weight_times JSON"))


def _version_preprocessing(conn: Connection) -> None:
    # Migration 1 builds the current table, which has the column already on a new database.
    if "preprocessing" not in {c["name"] for c in inspect(conn).get_columns("model_versions")}:
        conn.execute(text("ALTER TABLE model_versions ADD COLUMN preprocessing JSON"))


MIGRATIONS: list[Migration] = [
    (1, "models, versions, audit log, registry revision", _initial),
    (2, "indexes on stage and audit model", _indexes),
    (3, "batch inference jobs and their chunks", _jobs),
    (10, "API keys (hashes, roles, model scopes)", _api_keys),
    (11, "A/B experiments, their aggregates, outcomes and exposure log", _experiments),
    (12, "canary rollouts, their per-step aggregates, controller leases", _rollouts),
    (13, "shadow traffic: targets and per-process agreement per version pair", _shadows),
    (14, "drift detection: settings, reference profiles, sampled windows, results", _drift),
    (15, "alerts: instances and history, signals from every process, webhook outbox", _alerts),
    (16, "experiments: running minimum of each always-valid p-value", _sequential),
    (
        17,
        "precomputed predictions: published tables per model version and their rows",
        _precomputed,
    ),
    (18, "experiments: when each weight vector took effect", _weight_times),
    (19, "model versions: the preprocessing block registered with each", _version_preprocessing),
]


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    """SQLite has no advisory locks: serialise processes on one host with a lock file."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> int:
    """Bring the schema up to date; return the schema version."""
    with _sqlite_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        schema.schema_migrations.create(conn, checkfirst=True)
        applied = set(conn.execute(select(schema.schema_migrations.c.version)).scalars())
        for number, description, step in MIGRATIONS:
            if number in applied:
                continue
            logger.info("registry: applying migration %d (%s)", number, description)
            step(conn)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=number, description=description, applied_at=datetime.now(UTC)
                )
            )
    return max(number for number, _, _ in MIGRATIONS)


def current_version(engine: Engine) -> int:
    """The highest applied migration, 0 for an empty database."""
    if not inspect(engine).has_table("schema_migrations"):
        return 0
    with engine.connect() as conn:
        versions = list(conn.execute(select(schema.schema_migrations.c.version)).scalars())
    return max(versions, default=0)
