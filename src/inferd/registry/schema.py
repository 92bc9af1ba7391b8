"""The registry's tables (SQLAlchemy Core), the current schema that migrations build.

models ─┬─< model_versions
        └─< audit_log (by name, so the log outlives deleted models)
registry_state: one row whose ``revision`` grows with every change; replicas poll it.
jobs ─< job_chunks: batch inference jobs and their planned chunks (inferd.jobs).
api_keys: API keys (inferd.security); only a SHA-256 of each key is stored.
experiments ─┬─< experiment_aggregates (one row per variant and process, cumulative)
             ├─< experiment_outcomes (conversions, values, labels by request or unit)
             ├─< experiment_exposures (a sample of routed requests, to join outcomes)
             └─< experiment_sequential (the running minimum of each always-valid p-value)
rollouts ─< rollout_aggregates (one row per step, arm and process, cumulative)
leases: one row per controller that must run once (rollouts, ...): owner and expiry.
drift_settings, drift_profiles, drift_samples, drift_results: drift detection
(inferd.monitoring.drift): per-model settings, a reference profile per version, batches of
sampled requests flushed by each process, the latest check per version.
shadows: one row per model with shadow traffic (inferd.traffic.shadow); shadow_aggregates:
agreement per (model, primary version, shadow version) and process, cumulative.
alerts, alert_signals, alert_notifications: alerting (inferd.monitoring.alerts): every alert
with its state and times, events reported by any process, the webhook outbox with retries.
precomputed_tables ─< precomputed_rows: batch job outputs published as lookup tables per model
version (inferd.resilience.tables); rows of a table kept in Redis have only the table row here.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
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
    # The model's preprocessing block when the version was registered (versioned with it).
    Column("preprocessing", JSON, nullable=True),
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

# Batch inference jobs (inferd.jobs). A job pins the model version it started with; its input
# is planned once into chunks, and a chunk is marked done only after its part file is in place.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("pinned", JSON, nullable=False),
    Column("plan", JSON, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("rows_total", BigInteger, nullable=True),
    Column("rows_done", BigInteger, nullable=False, default=0),
    Column("rows_failed", BigInteger, nullable=False, default=0),
    Column("chunks_total", Integer, nullable=True),
    Column("chunks_done", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("owner", String(200), nullable=False, default=""),
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_rows", BigInteger, nullable=False, default=0),
    Column("run_started_at", Float, nullable=False, default=0.0),
    Column("progress_at", Float, nullable=False, default=0.0),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

job_chunks = Table(
    "job_chunks",
    metadata,
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("file_index", Integer, nullable=False),
    Column("start_row", BigInteger, nullable=False),
    Column("num_rows", BigInteger, nullable=False),
    Column("loc_start", BigInteger, nullable=True),
    Column("loc_end", BigInteger, nullable=True),
    Column("done", Boolean, nullable=False, default=False),
    Column("rows_out", BigInteger, nullable=False, default=0),
    Column("rows_failed", BigInteger, nullable=False, default=0),
    Column("part", Text, nullable=False, default=""),
)

# API keys (inferd.security.keys). ``id`` is the public prefix printed in listings and logs;
# ``key_hash`` is the SHA-256 of the whole key, which is never stored.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("models", JSON, nullable=True),
    Column("name", String(200), nullable=False, default=""),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# A/B/n experiments (inferd.traffic). ``spec`` is the validated ExperimentSpec; ``weights`` the
# history of weight vectors, oldest first, from which every process builds the same routing table.
experiments = Table(
    "experiments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("weights", JSON, nullable=False),
    # When each entry of ``weights`` took effect (ISO 8601, same length); NULL for rows from
    # before migration 18. The SRM check expects each period's units at that period's weights.
    Column("weight_times", JSON, nullable=True),
    Column("salt", String(64), nullable=False),
    Column("winner", String(100), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Each process upserts its own cumulative aggregates per variant; results sum the rows, so a
# process that restarts starts a new row (its ``source`` differs) and nothing is counted twice.
experiment_aggregates = Table(
    "experiment_aggregates",
    metadata,
    Column(
        "experiment_id",
        String(40),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("variant", String(100), primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

experiment_outcomes = Table(
    "experiment_outcomes",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "experiment_id",
        String(40),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("request_id", String(200), nullable=True),
    Column("unit", String(200), nullable=True),
    Column("variant", String(100), nullable=True),  # None until the request id is joined
    Column("kind", String(20), nullable=False),
    Column("value", Float, nullable=True),
    Column("label", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

experiment_exposures = Table(
    "experiment_exposures",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "experiment_id",
        String(40),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("request_id", String(200), nullable=True),
    Column("unit", String(200), nullable=True),
    Column("variant", String(100), nullable=False),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# The always-valid p-value of each (metric, variant) comparison is carried across looks as its
# running minimum (inferd.traffic.looks), so a later look never reports a higher one.
experiment_sequential = Table(
    "experiment_sequential",
    metadata,
    Column(
        "experiment_id",
        String(40),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("metric", String(40), primary_key=True),
    Column("variant", String(100), primary_key=True),
    Column("p_value", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Drift detection (inferd.monitoring.drift). Keyed by model name and version number, like the
# audit log, so that rows of deleted versions are simply never read again.
drift_settings = Table(
    "drift_settings",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

drift_profiles = Table(
    "drift_profiles",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("profile", JSON, nullable=False),
    Column("source", String(20), nullable=False),  # dataset | traffic
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per flush of one process: a uniform sample of the requests it sampled since its
# last flush (``seen`` of them), column-wise.
drift_samples = Table(
    "drift_samples",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("seen", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("data", JSON, nullable=False),
)

drift_results = Table(
    "drift_results",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("result", JSON, nullable=True),
    Column("checked_at", Float, nullable=False, default=0.0),  # seconds since the epoch
    Column("claimed_until", Float, nullable=False, default=0.0),
)

# Canary rollouts (inferd.traffic.rollouts). ``spec`` is the validated RolloutSpec; ``percents``
# the history of canary shares, oldest first (the splitter's weight history); ``history`` the
# events (start, steps, breach, operator actions) shown by the API.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("baseline", Integer, nullable=False),
    Column("candidate", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("percents", JSON, nullable=False),
    Column("salt", String(64), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("breach", JSON, nullable=True),
    Column("history", JSON, nullable=False),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("step_started_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Per process, step and arm, like experiment_aggregates: the guardrails compare both arms over
# the same window (the current step), merged across every process that served it.
rollout_aggregates = Table(
    "rollout_aggregates",
    metadata,
    Column(
        "rollout_id", String(40), ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("step", Integer, primary_key=True),
    Column("arm", String(20), primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A lease per controller that must run in one process across workers and replicas; the holder
# renews ``expires_at`` (seconds since the epoch, on the controller's clock) before it passes.
leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

# Shadow traffic (inferd.traffic.shadow): a model's mirror target, and each process's
# cumulative agreement per version pair (merged at read time, like experiment aggregates).
shadows = Table(
    "shadows",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("fraction", Float, nullable=False),
    Column("queue_size", Integer, nullable=False),
    Column("updated_by", String(200), nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

shadow_aggregates = Table(
    "shadow_aggregates",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("primary_version", String(50), primary_key=True),
    Column("shadow_version", String(50), primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Alerting (inferd.monitoring.alerts). One row per alert instance (a rule and its labels from
# pending or firing to resolved): active rows and history. Times are epoch seconds on the
# evaluator's clock.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(100), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("value", Float, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("fired_at", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("notified_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# Events from any process (drift found or gone, a rollout rolled back) for the evaluator.
alert_signals = Table(
    "alert_signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(30), nullable=False),
    Column("key", String(300), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("at", Float, nullable=False),
    Column("consumed", Boolean, nullable=False, default=False),
)

# Notifications waiting for delivery or delivered, with their retries.
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("receiver", String(100), nullable=False),
    Column("group_key", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

# Precomputed predictions (inferd.resilience.tables): one row per publish of a job's output for a
# model version; at most one ``active`` per (model, version). Rows are keyed by the publish id,
# so a new publish loads beside the active one and replaces it in one update.
precomputed_tables = Table(
    "precomputed_tables",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("job_id", String(40), nullable=False),
    Column("key_column", String(200), nullable=False),
    Column("store", String(10), nullable=False),
    Column("digest", String(71), nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("rows", BigInteger, nullable=False, default=0),
    Column("computed_at", Float, nullable=False),
    Column("max_age_s", Float, nullable=True),
    Column("state", String(20), nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("created_by", String(200), nullable=False, default=""),
    Column("published_at", Float, nullable=False),
)

precomputed_rows = Table(
    "precomputed_rows",
    metadata,
    Column("table_id", String(40), primary_key=True),
    Column("entity", String(300), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)
