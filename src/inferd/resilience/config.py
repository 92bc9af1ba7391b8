"""The ``cache``, ``precomputed``, ``circuit_breaker``, ``fallback`` and ``overload`` sections
of ``model.yaml``.

Every section is off by default: a cache or a fallback changes what a request may receive, and
overload control refuses requests that would otherwise have waited their turn.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheConfig(_Strict):
    """Prediction cache of a model: answers kept per version, keyed by the inputs' digest."""

    enabled: bool = Field(False, description="Answer repeated identical requests from the cache.")
    max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Bytes of outputs kept in this process (LRU)."
    )
    ttl_s: float = Field(300.0, gt=0, description="Seconds an answer stays valid.")
    coalesce: bool = Field(True, description="Identical requests in flight share one inference.")
    shared: bool = Field(
        True, description="Also use the server's Redis (--cache-redis-url) when it has one."
    )


class PrecomputedConfig(_Strict):
    """Answers published from a batch job (``inferd jobs publish``), looked up by entity id."""

    enabled: bool = Field(
        False, description="Answer requests carrying an entity id from the version's table."
    )
    max_age_s: float | None = Field(
        None,
        gt=0,
        description="Entries older than this are not served (online inference answers); the "
        "smaller of this and the table's own --max-age applies. None: only the table's.",
    )
    refresh_s: float = Field(
        5.0, gt=0, description="Seconds a process trusts what it knows of a version's table."
    )
    local_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="Bytes of looked-up rows kept in this process (LRU; a table's rows never "
        "change, so they need no expiry); 0 reads every row from the store.",
    )


class BreakerConfig(_Strict):
    """Circuit breaker of each version of a model (see :class:`CircuitBreaker`)."""

    window_s: float = Field(30.0, gt=0, description="Seconds of outcomes the rates are over.")
    min_requests: int = Field(20, ge=1, description="Outcomes in the window before it may open.")
    error_rate: float = Field(
        0.5, gt=0, le=1, description="Share of failed requests that opens the circuit."
    )
    slow_ms: float | None = Field(
        None, gt=0, description="A request slower than this counts as slow; None: no latency rule."
    )
    slow_rate: float = Field(
        0.5, gt=0, le=1, description="Share of slow requests that opens the circuit."
    )
    open_s: float = Field(10.0, gt=0, description="Seconds open before probing recovery.")
    half_open_probes: int = Field(
        3, ge=1, description="Successful probes that close it again (one failure reopens)."
    )


class FallbackConfig(_Strict):
    """Where a model's requests go when its version fails, is overloaded or its circuit is open.

    ``versions`` are tried in order; then ``default`` (one row's value per output, repeated for
    every row of the request) if set; otherwise the first error is the answer.
    """

    versions: list[str] = Field(
        default_factory=list, description="Version labels tried after the primary, in order."
    )
    default: dict[str, Any] | None = Field(
        None, description="Output name -> one row's value, answered when every version failed."
    )
    min_remaining_ms: float = Field(
        5.0, ge=0, description="A hop is tried only with at least this much of the deadline left."
    )

    @field_validator("versions", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        # YAML reads `versions: [1]` as integers; labels are text everywhere else.
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("default")
    @classmethod
    def _non_empty(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not value:
            raise ValueError("expected at least one output name with a value, got {}")
        return value


class OverloadConfig(_Strict):
    """Overload control of a model: an adaptive concurrency limit per loaded version, waiting
    by traffic class beyond it, and fast 503s when the wait would be too long.

    Off unless ``enabled`` (or the server's ``overload_control`` when ``enabled`` is unset):
    it answers 503 to requests that would otherwise have waited their turn.
    """

    enabled: bool | None = Field(
        None, description="Turn overload control on or off; None: the server's overload_control."
    )
    tolerance: float = Field(
        2.0, gt=1, le=100,
        description="Latency may reach this multiple of its no-load value (the same requests "
        "without their queue wait) before the limit shrinks.",
    )  # fmt: skip
    min_limit: int | None = Field(
        None, ge=1, description="Lowest limit; None: max_batch_size x instances (a full batch)."
    )
    max_limit: int | None = Field(
        None, ge=1, description="Highest limit; None: batching.max_queue_size + min_limit."
    )
    max_wait_ms: float | None = Field(
        None, ge=0,
        description="Longest expected wait for a slot beyond the limit before a request is "
        "shed; None: the current no-load latency (one service time).",
    )  # fmt: skip
    batch_share: float = Field(
        0.8, gt=0, le=1, description="Share of the limit requests of class 'batch' may take."
    )
    shadow_share: float = Field(
        0.5, gt=0, le=1, description="Share of the limit shadow copies may take (never wait)."
    )
    window_ms: float = Field(
        100.0, gt=0, le=60_000, description="Milliseconds of samples per limit update."
    )
