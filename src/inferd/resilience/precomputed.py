"""Answers from precomputed tables: a batch job's output, published for a model version.

A request carries its entity id as the V2 request parameter ``entity_id`` (a string, or a
list with one id per row; gRPC: a ``string_param``; ``/predict``: ``parameters.entity_id``) or
the HTTP header ``inferd-entity-id``. When its routed version has an active table that holds
every id and is younger than its max age, the rows answer; otherwise (no table, a miss, a
stale table, a store that failed) the request goes on to online inference.

A process learns which table is active per version from the registry, and trusts that for
``precomputed.refresh_s`` seconds (then reads it again in the background). Tables are keyed
by version (and checked against the version's artifact digest): a promote or a rollback
routes requests to another version and so to that version's table, never to another's rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from inferd.errors import InferdError, InvalidInput
from inferd.resilience.cache import Outputs
from inferd.resilience.fallback import rows_of
from inferd.resilience.layout import RowLayout, answer_shapes
from inferd.resilience.lookup import LookupBatcher
from inferd.resilience.table_redis import RedisRowReader
from inferd.resilience.tables import TableRecord, TableStore
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest

logger = logging.getLogger(__name__)
ENTITY_PARAMETER = "entity_id"
ENTITY_HEADER = "inferd-entity-id"


def entity_ids(request: InferenceRequest) -> list[str] | None:
    """The request's entity ids, one per row; None when it carries none.

    Raises:
        InvalidInput: not a string or a list of them, or not one id per row.
    """
    raw = request.parameters.get(ENTITY_PARAMETER)
    if raw is None:
        return None
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        ids = [str(raw)]
    elif isinstance(raw, list) and all(isinstance(x, str | int) for x in raw):
        ids = [str(x) for x in raw]
    else:
        kind = type(raw).__name__
        raise InvalidInput(
            "parameters.entity_id", "a string, or a list of strings with one per row", kind
        )
    rows = rows_of(request)
    if len(ids) != rows:
        raise InvalidInput(
            "parameters.entity_id", f"{rows} entity id(s), one per row of the inputs", str(len(ids))
        )
    return ids


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


@dataclass(slots=True)
class _Known:
    """What this process knows of a version's active table, and since when."""

    record: TableRecord | None
    layout: RowLayout | None
    shapes: dict[str, tuple[int, ...]]
    checked: float
    refreshing: bool = False


class Precomputed:
    """Lookups in the active table of each version this process serves.

    Args:
        tables: table records and ``db`` rows (the registry database).
        registry: where the hit, miss, stale and store error counters register.
        redis_url: where ``redis`` tables' rows are (the server's ``--cache-redis-url``).
        clock: monotonic seconds, for how long a table record is trusted.
        wall: seconds since the epoch, for the age of the predictions.
    """

    def __init__(
        self, tables: TableStore, registry: CollectorRegistry, redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.tables = tables
        self.metrics = PrecomputedMetrics(registry)
        self._clock, self._wall = clock, wall
        self._known: dict[tuple[str, str], _Known] = {}
        self._db = LookupBatcher(self._db_rows)
        self._reader = RedisRowReader(redis_url, clock=clock) if redis_url else None
        self._redis = LookupBatcher(self._reader.lookup) if self._reader is not None else None
        self._tasks: set[asyncio.Task[None]] = set()

    async def lookup(self, version: ModelVersion, request: InferenceRequest) -> Outputs | None:
        """The request's answer from the version's table, or None to run it online.

        Raises:
            InvalidInput: a malformed ``entity_id`` parameter.
        """
        ids = entity_ids(request)
        if ids is None:
            return None
        labels = (version.name, version.label)
        known = await self._table(version)
        record = known.record
        if record is None or known.layout is None:
            self.metrics.misses.labels(*labels).inc()
            return None
        limit = _max_age(record.max_age_s, version.config.precomputed.max_age_s)
        if limit is not None and record.age_s(self._wall()) > limit:
            self.metrics.stale.labels(*labels).inc()
            return None
        found = await self._rows(record, ids)
        values = [found[key] for key in ids if key in found] if found is not None else []
        if len(values) != len(ids):
            self.metrics.misses.labels(*labels).inc()
            return None
        try:
            outputs = known.layout.decode(values, known.shapes)
        except ValueError as err:  # not a row of this table's layout
            self._failed(record, str(err))
            return None
        if request.outputs is not None:
            if any(name not in outputs for name in request.outputs):
                self.metrics.misses.labels(*labels).inc()
                return None
            outputs = {name: outputs[name] for name in request.outputs}
        self.metrics.hits.labels(*labels).inc()
        return outputs

    def forget(self) -> None:
        """Read every version's table record again on its next request."""
        self._known.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._reader is not None:
            await self._reader.close()

    # -- rows ------------------------------------------------------------------------------

    async def _rows(self, record: TableRecord, ids: Sequence[str]) -> dict[str, bytes] | None:
        batcher = self._db if record.store == "db" else self._redis
        if batcher is None:
            self._failed(record, "this server has no Redis (--cache-redis-url)")
            return None
        try:
            return await batcher.get(record.id, ids)
        except (InferdError, ConnectionError) as err:  # the store is down: online answers
            self._failed(record, str(err))
            return None

    async def _db_rows(self, table_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        return await asyncio.to_thread(self.tables.lookup, table_id, keys)

    def _failed(self, record: TableRecord, why: str) -> None:
        self.metrics.errors.labels(record.store).inc()
        logger.warning("precomputed table %s of model '%s' version %d: %s",
                       record.id, record.model, record.version, why)  # fmt: skip

    # -- which table -----------------------------------------------------------------------

    async def _table(self, version: ModelVersion) -> _Known:
        key = (version.name, version.label)
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = await self._read(version, None)
        elif (
            self._clock() - known.checked > version.config.precomputed.refresh_s
            and not known.refreshing  # requests go on with what is known meanwhile
        ):
            known.refreshing = True
            task = asyncio.create_task(self._refresh(version, known))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return known

    async def _refresh(self, version: ModelVersion, old: _Known) -> None:
        self._known[(version.name, version.label)] = await self._read(version, old)

    async def _read(self, version: ModelVersion, old: _Known | None) -> _Known:
        try:
            record = await asyncio.to_thread(self.tables.active, version.name, version.version)
        except InferdError as err:  # registry unreachable: keep serving what is known
            logger.warning("precomputed tables of model '%s': %s", version.name, err.message)
            if old is not None:
                return _Known(old.record, old.layout, old.shapes, self._clock())
            return _Known(None, None, {}, self._clock())
        if record is not None and version.digest and record.digest != version.digest:
            logger.warning(
                "precomputed table %s of model '%s' version %d was computed by artifact %s, "
                "the version serves %s: not used", record.id, version.name, version.version,
                record.digest, version.digest,
            )  # fmt: skip
            record = None
        if record is None:
            return _Known(None, None, {}, self._clock())
        if old is not None and old.record is not None and old.record.id == record.id:
            return _Known(record, old.layout, old.shapes, self._clock())
        layout = RowLayout(record.outputs)
        return _Known(record, layout, _shapes(version, record), self._clock())


def _shapes(version: ModelVersion, record: TableRecord) -> dict[str, tuple[int, ...]]:
    signature = version.signature
    declared: dict[str, tuple[int, ...]] = {}
    if signature is not None:
        declared = {s.name: tuple(s.shape[1:]) for s in signature.outputs}
    return answer_shapes(record.outputs, declared)


def _max_age(table: float | None, model: float | None) -> float | None:
    limits: Any = [x for x in (table, model) if x is not None]
    return min(limits) if limits else None
