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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from inferd.errors import InferdError, InvalidInput
from inferd.resilience.cache import LocalCache, Outputs
from inferd.resilience.fallback import rows_of
from inferd.resilience.layout import RowLayout, answer_shapes
from inferd.resilience.lookup import LookupBatcher
from inferd.resilience.metrics import PrecomputedMetrics
from inferd.resilience.table_redis import RedisRowReader
from inferd.resilience.tables import RowReader, TableRecord, TableStore
from inferd.serving.manager import ModelVersion
from inferd.types import InferenceRequest

logger = logging.getLogger(__name__)
ENTITY_PARAMETER = "entity_id"
ENTITY_HEADER = "inferd-entity-id"
_FOREVER_S = 1e12
_LOG_EVERY_S = 10.0


def entity_ids(request: InferenceRequest) -> list[str] | None:
    """The request's entity ids, one per row; None when it carries none.

    Raises:
        InvalidInput: not a string or a list of them, or not one id per row.
    """
    raw = request.parameters.get(ENTITY_PARAMETER)
    if raw is None:
        return None
    if type(raw) is str:  # the common case first: one row, one id
        ids = [raw]
    elif isinstance(raw, str | int) and not isinstance(raw, bool):
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


@dataclass(slots=True)
class _Known:
    """What this process knows of a version's active table, and since when."""

    record: TableRecord | None
    layout: RowLayout | None
    shapes: dict[str, tuple[int, ...]]
    checked: float
    counters: tuple[Any, Any, Any]  # hits, misses, stale of the version
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
        self._known: dict[tuple[str, int], _Known] = {}
        # One thread and one connection for db lookups: a batch at a time per table anyway.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="precomputed")
        self._reader = RowReader(tables)
        self._db = LookupBatcher(self._db_rows)
        self._redis_reader = (
            RedisRowReader(redis_url, timeout_s=0.2, clock=clock) if redis_url else None
        )
        self._redis = (
            LookupBatcher(self._redis_reader.lookup) if self._redis_reader is not None else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._rows: dict[str, LocalCache] = {}  # per model: rows looked up lately
        self._logged: dict[str, float] = {}  # store -> when a failure was last logged

    async def lookup(self, version: ModelVersion, request: InferenceRequest) -> Outputs | None:
        """The request's answer from the version's table, or None to run it online.

        Raises:
            InvalidInput: a malformed ``entity_id`` parameter.
        """
        ids = entity_ids(request)
        if ids is None:
            return None
        known = await self._table(version)
        record, counters = known.record, known.counters
        if record is None or known.layout is None:
            counters[1].inc()
            return None
        limit = _max_age(record.max_age_s, version.config.precomputed.max_age_s)
        if limit is not None and record.age_s(self._wall()) > limit:
            counters[2].inc()
            return None
        local = self._local(version)
        outputs = _from_local(local, record.id, ids) if local is not None else None
        if outputs is None:
            outputs = await self._stored(known, record, ids)
            if outputs is None:
                counters[1].inc()
                return None
            if local is not None:
                _keep(local, record.id, ids, outputs)
        if request.outputs is not None:
            if any(name not in outputs for name in request.outputs):
                counters[1].inc()
                return None
            outputs = {name: outputs[name] for name in request.outputs}
        counters[0].inc()
        return outputs

    async def close(self) -> None:
        """Stop the background reads and close the store connections."""
        for task in list(self._tasks):
            task.cancel()
        if self._redis_reader is not None:
            await self._redis_reader.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._reader.close)
        self._executor.shutdown(wait=False)

    # -- rows ------------------------------------------------------------------------------

    async def _stored(
        self, known: _Known, record: TableRecord, ids: Sequence[str]
    ) -> Outputs | None:
        """The rows from the table's store; None when one is missing or the store failed."""
        batcher = self._db if record.store == "db" else self._redis
        if batcher is None or known.layout is None:
            self._failed(record, "this server has no Redis (--cache-redis-url)")
            return None
        try:
            found = await batcher.get(record.id, ids)
        except (InferdError, ConnectionError) as err:  # the store is down: online answers
            self._failed(record, str(err))
            return None
        values = [found[key] for key in ids if key in found]
        if len(values) != len(ids):
            return None
        try:
            return known.layout.decode(values, known.shapes)
        except ValueError as err:  # not a row of this table's layout
            self._failed(record, str(err))
            return None

    def _local(self, version: ModelVersion) -> LocalCache | None:
        size = version.config.precomputed.local_bytes
        if size <= 0:
            return None
        found = self._rows.get(version.name)
        if found is None:  # rows of a table id never change: no expiry
            found = self._rows[version.name] = LocalCache(size, _FOREVER_S, self._clock)
        found.max_bytes = size
        return found

    async def _db_rows(self, table_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._reader.lookup, table_id, keys)

    def _failed(self, record: TableRecord, why: str) -> None:
        self.metrics.errors.labels(record.store).inc()
        now = self._clock()
        if now - self._logged.get(record.store, -_LOG_EVERY_S) < _LOG_EVERY_S:
            return  # a store that is down fails every request: the counter has them all
        self._logged[record.store] = now
        logger.warning("precomputed table %s of model '%s' version %d: %s (online inference "
                       "answers; logged at most every %g s)", record.id, record.model,
                       record.version, why, _LOG_EVERY_S)  # fmt: skip

    # -- which table -----------------------------------------------------------------------

    async def _table(self, version: ModelVersion) -> _Known:
        key = (version.name, version.version)
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
        self._known[(version.name, version.version)] = await self._read(version, old)

    async def _read(self, version: ModelVersion, old: _Known | None) -> _Known:
        labels = (version.name, version.label)
        m = self.metrics
        counters = (m.hits.labels(*labels), m.misses.labels(*labels), m.stale.labels(*labels))
        try:
            record = await asyncio.to_thread(self.tables.active, version.name, version.version)
        except InferdError as err:  # registry unreachable: keep serving what is known
            logger.warning("precomputed tables of model '%s': %s", version.name, err.message)
            if old is not None:
                return _Known(old.record, old.layout, old.shapes, self._clock(), counters)
            return _Known(None, None, {}, self._clock(), counters)
        if record is not None and version.digest and record.digest != version.digest:
            logger.warning(
                "precomputed table %s of model '%s' version %d was computed by artifact %s, "
                "the version serves %s: not used", record.id, version.name, version.version,
                record.digest, version.digest,
            )  # fmt: skip
            record = None
        if record is None:
            return _Known(None, None, {}, self._clock(), counters)
        if old is not None and old.record is not None and old.record.id == record.id:
            return _Known(record, old.layout, old.shapes, self._clock(), counters)
        layout = RowLayout(record.outputs)
        return _Known(record, layout, _shapes(version, record), self._clock(), counters)


def _row_key(table_id: str, entity: str) -> bytes:
    return f"{table_id}\0{entity}".encode()


def _from_local(local: LocalCache, table_id: str, ids: Sequence[str]) -> Outputs | None:
    if len(ids) == 1:
        return local.get(_row_key(table_id, ids[0]))
    rows = [local.get(_row_key(table_id, key)) for key in ids]
    if any(row is None for row in rows):
        return None
    return {name: np.concatenate([row[name] for row in rows if row is not None])
            for name in rows[0] or {}}  # fmt: skip


def _keep(local: LocalCache, table_id: str, ids: Sequence[str], outputs: Outputs) -> None:
    if len(ids) == 1:  # decoded into arrays of their own: kept as they are
        local.put(_row_key(table_id, ids[0]), outputs)
        return
    for index, key in enumerate(ids):
        local.put(
            _row_key(table_id, key), {n: a[index : index + 1].copy() for n, a in outputs.items()}
        )


def _shapes(version: ModelVersion, record: TableRecord) -> dict[str, tuple[int, ...]]:
    signature = version.signature
    declared: dict[str, tuple[int, ...]] = {}
    if signature is not None:
        declared = {s.name: tuple(s.shape[1:]) for s in signature.outputs}
    return answer_shapes(record.outputs, declared)


def _max_age(table: float | None, model: float | None) -> float | None:
    limits: Any = [x for x in (table, model) if x is not None]
    return min(limits) if limits else None
