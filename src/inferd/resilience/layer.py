"""The data plane's one hook: precomputed tables, cache, coalescing, circuit breakers and
fallback chains.

:meth:`Resilience.run` stands where the data plane would run a request on its chosen version.
A model with none of ``precomputed``, ``cache``, ``circuit_breaker`` and ``fallback`` in its
``model.yaml`` goes straight through (a few attribute reads).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry

from inferd.errors import InferdError, RequestTimeout
from inferd.resilience.breaker import CircuitBreaker, CircuitOpen, CircuitState
from inferd.resilience.cache import LocalCache, Outputs
from inferd.resilience.coalesce import Coalescer
from inferd.resilience.fallback import (
    default_outputs,
    falls_back,
    hop_reason,
    remaining_ms,
    rows_of,
)  # fmt: skip
from inferd.resilience.gate import Overloaded
from inferd.resilience.key import request_key
from inferd.resilience.metrics import ResilienceMetrics
from inferd.resilience.precomputed import Precomputed
from inferd.resilience.redis_cache import RedisCache
from inferd.resilience.tables import TableStore
from inferd.serving.manager import ModelVersion
from inferd.types import BatchInfo, InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

Run = Callable[[ModelVersion, InferenceRequest, float], Awaitable[InferenceResponse]]
Resolve = Callable[[str, str | None], Awaitable[ModelVersion]]
SERVED_FROM = "served_from"
_Flight = tuple[Outputs, BatchInfo]  # what one shared inference hands every waiter


class Resilience:
    """Per-model caches and breakers of one process, and the fallback chain between them.

    Args:
        registry: where the metrics register (the server's).
        redis_url: the shared cache tier, or None for in-process caches only; also where the
            rows of precomputed tables published to Redis are read.
        clock: monotonic seconds for TTLs and breakers (injectable for tests).
        tables: the precomputed tables' records (the registry database); None answers
            nothing from precomputed tables.
        wall: seconds since the epoch, for the age of precomputed predictions.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic, tables: TableStore | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.metrics = ResilienceMetrics(registry)
        self.precomputed = (
            Precomputed(tables, self.metrics.registry, redis_url, clock, wall) if tables else None
        )
        self._clock = clock
        self.redis = (
            RedisCache(redis_url, on_error=self._redis_failed, clock=clock) if redis_url else None
        )
        self._caches: dict[str, LocalCache] = {}
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._flights: Coalescer[_Flight] = Coalescer()
        self._writes: set[asyncio.Task[None]] = set()  # Redis writes in flight, kept alive

    async def run(
        self, version: ModelVersion, request: InferenceRequest, start: float,
        run: Run, resolve: Resolve,
    ) -> InferenceResponse:  # fmt: skip
        """Answer ``request`` as the data plane's ``run`` would on ``version``, or from its
        precomputed table, or from the cache, or down the model's fallback chain."""
        config = version.config
        if config.precomputed.enabled and self.precomputed is not None:
            found = await self.precomputed.lookup(version, request)
            if found is not None:  # as many rows as the request has entity ids
                rows = len(next(iter(found.values()))) if found else rows_of(request)
                return _answer(version, request, start, found, BatchInfo(0, rows), "precomputed")
        if config.fallback is None and config.circuit_breaker is None:
            if not config.cache.enabled:
                return await run(version, request, start)
            return await self._cached(version, request, start, run)
        try:
            return await self._guarded(version, request, start, run)
        except InferdError as err:
            if config.fallback is None or not falls_back(err):
                raise
            return await self._fall_back(version, request, start, run, resolve, err)

    async def close(self) -> None:
        """Finish the Redis writes in flight and close the connections."""
        if self.precomputed is not None:
            await self.precomputed.close()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self.redis is not None:
            await self.redis.close()

    def breaker(self, version: ModelVersion) -> CircuitBreaker | None:
        """The version's breaker, made on first use; None when its model configures none."""
        config = version.config.circuit_breaker
        if config is None:
            return None
        key = (version.name, version.label)
        found = self._breakers.get(key)
        if found is None or found.config != config:
            gauge = self.metrics.circuit_state.labels(*key)
            gauge.set(0)
            found = CircuitBreaker(config, self._clock, lambda state: self._moved(key, state))
            self._breakers[key] = found
        return found

    # -- breaker ---------------------------------------------------------------------------

    async def _guarded(
        self, version: ModelVersion, request: InferenceRequest, start: float, run: Run
    ) -> InferenceResponse:
        breaker = self.breaker(version)
        if breaker is None:
            return await self._cached(version, request, start, run)
        if not breaker.allow():
            raise CircuitOpen(version.name, version.label, breaker.retry_after_s())
        began = time.perf_counter()
        try:
            response = await self._cached(version, request, start, run)
        except Overloaded:  # overload control shed it before the version ran: no outcome
            breaker.release()
            raise
        except InferdError as err:
            breaker.record(not falls_back(err), time.perf_counter() - began)
            raise
        except BaseException:  # cancelled, or a bug: no outcome to judge the version by
            breaker.release()
            raise
        if response.parameters.get(SERVED_FROM) == "cache":
            breaker.release()  # the version did no work
        else:
            breaker.record(True, time.perf_counter() - began)
        return response

    def _moved(self, key: tuple[str, str], state: CircuitState) -> None:
        self.metrics.circuit_state.labels(*key).set(int(state))
        logger.warning("circuit of model '%s' version %s is now %s", *key, state.name.lower())

    # -- fallback chain --------------------------------------------------------------------

    async def _fall_back(
        self, primary: ModelVersion, request: InferenceRequest, start: float, run: Run,
        resolve: Resolve, first: InferdError,
    ) -> InferenceResponse:  # fmt: skip
        chain = primary.config.fallback
        if chain is None:  # run() checked already; this narrows the type
            raise first
        reason, where = hop_reason(first), primary.label
        for label in chain.versions:
            left = remaining_ms(request, start)
            if left is not None and left < chain.min_remaining_ms:
                reason = "deadline"
                break  # only the default is cheap enough now
            self._hop(primary.name, where, label, reason)
            try:
                target = await resolve(primary.name, label)
            except InferdError as err:  # not registered or not loadable: a config problem
                logger.warning("fallback version %s of model '%s': %s", label, primary.name, err)
                reason, where = "unavailable", label
                continue
            try:
                hop = dataclasses.replace(request, model_version=label, timeout_ms=left)
                response = await self._guarded(target, hop, time.perf_counter(), run)
            except InferdError as err:
                if not falls_back(err):
                    raise
                reason, where = hop_reason(err), label
                continue
            response.latency_ms = (time.perf_counter() - start) * 1000.0
            return _mark(response, "fallback", reason)
        if chain.default is None:
            raise first
        self._hop(primary.name, where, "default", reason)
        outputs = default_outputs(
            chain.default, primary.config, primary.signature, rows_of(request)
        )
        response = InferenceResponse(
            model_name=primary.name, model_version=primary.label, outputs=outputs,
            id=request.id, batch=BatchInfo(batch_size=0, rows=rows_of(request)),
            latency_ms=(time.perf_counter() - start) * 1000.0,
        )  # fmt: skip
        return _mark(response, "fallback", reason, default=True)

    def _hop(self, model: str, source: str, target: str, reason: str) -> None:
        self.metrics.fallbacks.labels(model, reason).inc()
        logger.warning(
            "fallback: model '%s' version %s -> %s (reason: %s)", model, source, target, reason
        )

    # -- cache -----------------------------------------------------------------------------

    async def _cached(
        self, version: ModelVersion, request: InferenceRequest, start: float, run: Run
    ) -> InferenceResponse:
        config = version.config.cache
        if not config.enabled:
            return await run(version, request, start)
        key = request_key(version.name, version.label, version.digest, request)
        local = self._cache(version)
        labels = (version.name, version.label)
        found = local.get(key)
        if found is not None:
            self.metrics.cache_hits.labels(*labels, "local").inc()
            return _answer(version, request, start, found, BatchInfo(0, rows_of(request)), "cache")

        async def fill() -> _Flight:
            shared = await self.redis.get(key) if self.redis and config.shared else None
            if shared is not None:
                self.metrics.cache_hits.labels(*labels, "redis").inc()
                return self._keep(version.name, local, key, shared), BatchInfo(0, rows_of(request))
            self.metrics.cache_misses.labels(*labels).inc()
            response = await run(version, request, start)
            outputs = self._keep(version.name, local, key, response.outputs)
            if self.redis is not None and config.shared:
                self._share(key, outputs, config.ttl_s)
            return outputs, response.batch

        if config.coalesce:
            (outputs, info), leader = await self._join(version, key, fill, request, start)
        else:
            (outputs, info), leader = await fill(), True
        if not leader:
            self.metrics.cache_coalesced.labels(*labels).inc()
        served = None if leader else "coalesced"
        if info.batch_size == 0:  # Redis answered, no batch ran
            served = "cache"
        return _answer(version, request, start, outputs, info, served)

    async def _join(
        self, version: ModelVersion, key: bytes, fill: Callable[[], Awaitable[_Flight]],
        request: InferenceRequest, start: float,
    ) -> tuple[_Flight, bool]:  # fmt: skip
        """Share the flight under ``key``, waiting no longer than this request's deadline
        (the flight runs under the first request's; leaving it does not cancel it)."""
        left = remaining_ms(request, start)
        if left is None:
            return await self._flights.run(key, fill)
        try:
            return await asyncio.wait_for(self._flights.run(key, fill), max(left, 0.0) / 1000.0)
        except TimeoutError:
            waited = (time.perf_counter() - start) * 1000.0
            where = "waiting for an identical request in flight"
            raise RequestTimeout(
                version.name, version.label, waited, request.timeout_ms or 0.0, where
            ) from None

    def _cache(self, version: ModelVersion) -> LocalCache:
        config = version.config.cache
        found = self._caches.get(version.name)
        if found is None:
            evictions = self.metrics.cache_evictions
            model = version.name
            found = LocalCache(
                config.max_bytes, config.ttl_s, self._clock,
                lambda reason: evictions.labels(model, reason).inc(),
            )  # fmt: skip
            self._caches[version.name] = found
        found.max_bytes, found.ttl_s = config.max_bytes, config.ttl_s  # a reload may change them
        return found

    def _keep(self, model: str, local: LocalCache, key: bytes, outputs: Outputs) -> Outputs:
        # A request's outputs are often views of its batch's arrays: keeping a view would keep
        # the whole batch alive while the byte bound counts only the view.
        owned = {n: a if a.base is None else a.copy() for n, a in outputs.items()}
        local.put(key, owned)
        self.metrics.cache_bytes.labels(model).set(local.bytes)
        return owned

    def _share(self, key: bytes, outputs: Outputs, ttl_s: float) -> None:
        if self.redis is None:
            return
        task = asyncio.ensure_future(self.redis.set(key, outputs, ttl_s))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _redis_failed(self, operation: str) -> None:
        self.metrics.redis_errors.labels(operation).inc()


def _answer(
    version: ModelVersion, request: InferenceRequest, start: float, outputs: Outputs,
    info: BatchInfo, served: str | None,
) -> InferenceResponse:  # fmt: skip
    response = InferenceResponse(
        model_name=version.name, model_version=version.label, outputs=outputs, id=request.id,
        batch=info, latency_ms=(time.perf_counter() - start) * 1000.0,
    )  # fmt: skip
    return response if served is None else _mark(response, served)


def _mark(
    response: InferenceResponse, served: str, reason: str | None = None, default: bool = False
) -> InferenceResponse:
    response.parameters[SERVED_FROM] = served
    if reason is not None:
        response.parameters["fallback_reason"] = reason
    if default:
        response.parameters["fallback_default"] = True
    return response
