"""Server settings: pydantic-settings with the ``INFERD_`` prefix.

Precedence, highest first: command-line flags (the CLI turns them into constructor
arguments), ``INFERD_*`` environment variables, an optional ``.env``-style file named by
``INFERD_CONFIG_FILE``, then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from inferd.errors import ConfigError


def default_home() -> Path:
    """The data directory: ``$INFERD_HOME`` or ``~/.inferd``."""
    return Path(os.environ.get("INFERD_HOME") or Path.home() / ".inferd").expanduser()


class Settings(BaseSettings):
    """Everything the server process needs to know; passed in explicitly, never global."""

    model_config = SettingsConfigDict(
        env_prefix="INFERD_", extra="forbid", frozen=True, protected_namespaces=()
    )

    home: Path = Field(default_factory=default_home, description="Data directory.")
    model_repository: Path | None = Field(
        None, description="Model repository folder; None serves the built-in examples."
    )
    registry_url: str | None = Field(
        None, description="Registry database URL; default sqlite:///<home>/inferd.db."
    )
    artifact_root: str | None = Field(
        None,
        description="Where `inferd models register --upload` copies artifacts (any "
        "fsspec URI); default <home>/artifacts.",
    )
    poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often each replica polls the registry and repository."
    )
    memory_budget_bytes: int | None = Field(
        None, gt=0, description="Memory all loaded versions may hold; LRU eviction above it."
    )
    device_memory_budget_bytes: int | None = Field(
        None, gt=0, description="Memory the versions on one GPU may hold there; LRU above it."
    )
    host: str = Field(
        "127.0.0.1",
        description="Address to listen on (0.0.0.0: every interface; auth turns on by default).",
    )
    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port.")
    grpc_port: int = Field(8001, ge=0, le=65535, description="gRPC port.")
    grpc_transport: Literal["grpcio", "native"] = Field(
        "native",
        description="The gRPC server's HTTP/2 core: native (inferd's own on asyncio, the "
        "default: it holds under the attack suite, docs/security.md) or grpcio (grpcio's "
        "C-core server).",
    )
    grpc_max_message_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest gRPC request or response message (RESOURCE_EXHAUSTED above).",
    )
    grpc_max_buffered_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024,
        description="Bytes of gRPC request messages still arriving that one process holds "
        "at most, over all connections; a call that would go past it gets RESOURCE_EXHAUSTED "
        "(at least grpc_max_message_bytes).",
    )
    grpc_max_new_connections_per_s: float = Field(
        200.0,
        ge=0,
        description="New gRPC connections one process takes per second after a burst of "
        "max_connections (native core); the others wait up to 1 s, then get GOAWAY, so a "
        "churn of short-lived connections cannot starve connected clients. 0: no limit.",
    )
    workers: int = Field(1, ge=1, le=64, description="Server processes sharing the HTTP port.")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    request_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a client has to send one whole request, headers and "
        "body (408 and close after): slow clients cannot hold connections.",
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="Connections and requests one process handles at once; "
        "above it new ones get 503 at once.",
    )
    graceful_timeout_s: float = Field(
        30.0, gt=0, description="On SIGTERM, how long in-flight and queued requests may finish."
    )
    drain_delay_s: float = Field(
        0.0,
        ge=0,
        description="On SIGTERM, how long readiness reports not ready before the listeners "
        "close, so a load balancer's health check stops sending first (docs/deploy.md).",
    )
    log_level: str = Field("info", pattern=r"^(critical|error|warning|info|debug)$")
    access_log: bool = Field(False, description="Log every HTTP request (costs throughput).")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object per line with the request id "
        "and trace id (docs/observability.md).",
    )
    # Tracing (inferd.monitoring.tracing, docs/observability.md).
    otlp_endpoint: str | None = Field(
        None,
        description="Export OpenTelemetry traces over OTLP/gRPC to this URL (e.g. "
        "http://127.0.0.1:4317); tracing is off without one.",
    )
    trace_sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of requests without a sampled traceparent that are traced "
        "(parent-based: a caller's sampled flag always wins).",
    )
    # Prediction log (inferd.monitoring.prediction_log, docs/prediction-log.md).
    prediction_log_uri: str | None = Field(
        None,
        description="Write sampled requests with their answers as Parquet under this folder "
        "or fsspec URI (s3://, gs://, ...); the prediction log is off without one.",
    )
    prediction_log_rate: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Share of requests logged for models whose model.yaml sets no "
        "prediction_log_rate.",
    )
    prediction_log_flush_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds between two writes of the prediction log (sooner when 5000 "
        "requests wait); a write that failed (a full disk) is not retried, the next one is.",
    )
    # Shared prediction cache (inferd.resilience, docs/resilience.md).
    cache_redis_url: str | None = Field(
        None,
        description="Redis shared by replicas for models whose model.yaml enables the cache "
        "(redis://host:port/db); None: each process caches alone.",
    )
    # Overload control (inferd.resilience.admission, docs/resilience.md).
    overload_control: bool = Field(
        False,
        description="Adaptive concurrency limits and load shedding for models whose model.yaml "
        "leaves overload.enabled unset (off: requests wait in the queue up to max_queue_size).",
    )
    # The garbage collector (inferd.serving.collector, docs/performance.md).
    gc_tuning: bool = Field(
        True,
        description="Freeze the objects left after the start-up load (gc.freeze) and raise "
        "the young generation's threshold to gc_young_threshold; false: CPython's defaults.",
    )
    gc_young_threshold: int = Field(
        50_000,
        ge=1,
        description="Tracked allocations between two young collections with gc_tuning "
        "(CPython's default is 700).",
    )
    # Capacity (inferd.serving.load, inferd.monitoring.capacity, docs/deploy.md).
    readiness_max_queue_depth: int | None = Field(
        None,
        ge=0,
        description="Report not ready (GET /v2/health/ready 503) while more requests than this "
        "wait in this process's batcher queues, all models together; None: never. Liveness "
        "never looks at it.",
    )
    capacity_rps: str | None = Field(
        None,
        description="Requests/s one replica answers within its SLO, per model "
        "(model=rps,model=rps; from `inferd plan replicas`): exports inferd_capacity_rps and "
        "the desired-replicas hint inferd_desired_replicas_hint.",
    )
    # Alerts (inferd.monitoring.alerts, docs/alerts.md).
    alerts_file: Path | None = Field(
        None,
        description="Alert rules and receivers (alerts.yaml, docs/alerts.md); without one "
        "no rules are evaluated and /v1/alerts lists none.",
    )
    # Security (inferd.security, docs/security.md).
    auth: str = Field(
        "auto",
        pattern=r"^(on|off|auto)$",
        description="API key authentication: on, off, or auto (off on a loopback host with "
        "no keys or JWT configured, on otherwise).",
    )
    admin_key: str | None = Field(
        None, repr=False, min_length=16, description="A bootstrap admin API key (not stored)."
    )
    admin_key_file: Path | None = Field(
        None, description="A file holding the bootstrap admin API key."
    )
    jwt_key_file: Path | None = Field(
        None,
        description="Accept JWT bearer tokens signed by this PEM public key or HMAC "
        "secret file (docs/security.md).",
    )
    jwt_jwks_file: Path | None = Field(
        None, description="Accept JWT bearer tokens signed by a key of this JWKS file."
    )
    jwt_algorithms: str | None = Field(
        None,
        description="Comma-separated JWT algorithms accepted (default: every one the "
        "key's kind allows).",
    )
    jwt_audience: str | None = Field(None, description="The JWT 'aud' required.")
    jwt_issuer: str | None = Field(None, description="The JWT 'iss' required.")
    jwt_role_claim: str = Field("role", min_length=1, description="JWT claim with the role.")
    jwt_models_claim: str = Field(
        "models", min_length=1, description="JWT claim with the model names (absent: all)."
    )
    metrics_auth: bool = Field(
        True, description="With auth on, /metrics needs an operator or admin key."
    )
    key_rate_limit: float = Field(
        0.0, ge=0, description="Requests per second per API key (token bucket); 0: no limit."
    )
    key_rate_burst: int = Field(100, ge=1, description="Bucket size of the per-key rate limit.")
    client_rate_limit: float = Field(
        0.0, ge=0, description="Requests per second per client address; 0: no limit."
    )
    client_rate_burst: int = Field(
        200, ge=1, description="Bucket size of the per-client-address rate limit."
    )
    key_tokens_per_minute: int = Field(
        0,
        ge=0,
        description="Generated and prompt tokens per minute per API key on the "
        "generative endpoints (reserved at admission, corrected at the end); 0: no limit.",
    )
    model_tokens_per_minute: int = Field(
        0,
        ge=0,
        description="Tokens per minute per generative model, all callers together "
        "(model.yaml parameters.tokens_per_minute overrides it); 0: no limit.",
    )
    max_concurrent_per_key: int = Field(
        256, ge=1, description="Requests one API key may have in flight at once (429 above)."
    )
    max_tensor_elements: int = Field(
        1 << 26, ge=1, description="Largest element count of one input tensor (413 above)."
    )
    max_batch_rows: int = Field(
        1 << 16, ge=1, description="Largest first dimension (rows) of an input (413 above)."
    )
    max_string_bytes: int = Field(
        1 << 20, ge=1, description="Longest BYTES element of an input (413 above)."
    )
    code_roots: str | None = Field(
        None,
        description="Folders (separated by ':') that python models and trusted pickles may "
        "load from; default the model repository and the artifact root.",
    )
    tls_certfile: Path | None = Field(None, description="PEM certificate: HTTPS and gRPC TLS.")
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile.")
    tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle: require client certificates signed by it (mTLS)."
    )

    @property
    def resolved_registry_url(self) -> str:
        return self.registry_url or f"sqlite:///{self.home / 'inferd.db'}"

    @property
    def resolved_artifact_root(self) -> str:
        return self.artifact_root or str(self.home / "artifacts")


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides.

    Raises:
        ConfigError: naming the setting and the problem.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            "settings",
            field,
            f"{first['msg']} (flag --{field.replace('_', '-')} or INFERD_{field.upper()})",
        ) from err
