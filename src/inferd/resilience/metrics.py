"""Prometheus families of the cache, precomputed tables, the breakers and the fallbacks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ResilienceMetrics:
    """``inferd_cache_*``, ``inferd_circuit_state`` and ``inferd_fallback_total``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.registry = r
        self.cache_hits = Counter(
            "inferd_cache_hits_total", "Requests answered from the prediction cache.",
            ["model", "version", "tier"], registry=r,
        )  # fmt: skip
        self.cache_misses = Counter(
            "inferd_cache_misses_total", "Cacheable requests the cache could not answer.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.cache_evictions = Counter(
            "inferd_cache_evictions_total", "Answers dropped from the in-process cache.",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        self.cache_bytes = Gauge(
            "inferd_cache_bytes", "Bytes held by the in-process prediction cache.",
            ["model"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.cache_coalesced = Counter(
            "inferd_cache_coalesced_total",
            "Requests that shared an identical request's inference in flight.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.redis_errors = Counter(
            "inferd_cache_redis_errors_total",
            "Failed calls to the shared Redis cache (the request went on without it).",
            ["operation"], registry=r,
        )  # fmt: skip
        self.circuit_state = Gauge(
            "inferd_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ["model", "version"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.fallbacks = Counter(
            "inferd_fallback_total", "Hops down a model's fallback chain, by why.",
            ["model", "reason"], registry=r,
        )  # fmt: skip


class PrecomputedMetrics:
    """``inferd_precomputed_{hits,misses,stale}_total{model,version}`` and
    ``inferd_precomputed_errors_total{store}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.hits = Counter(
            "inferd_precomputed_hits_total",
            "Requests answered from the version's precomputed table.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.misses = Counter(
            "inferd_precomputed_misses_total",
            "Requests with an entity id the version's table could not answer (no table, or "
            "an id not in it); online inference answered.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.stale = Counter(
            "inferd_precomputed_stale_total",
            "Requests with an entity id whose table was older than its max age; online "
            "inference answered.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "inferd_precomputed_errors_total",
            "Failed lookups in a precomputed table's store (the request went on online).",
            ["store"], registry=r,
        )  # fmt: skip
