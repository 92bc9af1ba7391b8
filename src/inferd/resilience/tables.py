"""Published tables of precomputed predictions in the registry database.

    precomputed_tables  one row per publish of a job's output for a model version:
                        loading -> active -> replaced, or loading -> failed
    precomputed_rows    (table id, entity id) -> the row's outputs (:class:`RowLayout` bytes),
                        for tables kept in the database (``store: db``)

Rows are keyed by the publish id, never by the version alone: a new publish loads beside the
active table, then one UPDATE makes it the active one, so readers see the old table or the new
one, never half of one. At most one table is active per (model, version).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from inferd.errors import InferdError
from inferd.registry import schema
from inferd.registry.store import Registry
from inferd.resilience.layout import OutputColumn

logger = logging.getLogger(__name__)
T, R = schema.precomputed_tables, schema.precomputed_rows
STORES = ("db", "redis")
LOOKUP_MAX_KEYS = 500  # below SQLite's oldest limit of 999 bound parameters per statement


class TableNotFound(InferdError):
    """No published table matches."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, what: str) -> None:
        super().__init__(f"no precomputed table {what}; `inferd jobs publish JOB --key COL`")


@dataclass(frozen=True, slots=True)
class TableRecord:
    """One publish of a job's output as the lookup table of a model version."""

    id: str
    model: str
    version: int
    job_id: str
    key_column: str
    store: str
    digest: str
    outputs: tuple[OutputColumn, ...]
    computed_at: float  # seconds since the epoch: when the job finished
    max_age_s: float | None = None
    rows: int = 0
    state: str = "loading"
    error: str = ""
    created_by: str = ""
    published_at: float = field(default_factory=time.time)

    def age_s(self, now: float) -> float:
        """Seconds since the predictions were computed."""
        return now - self.computed_at

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The JSON shape of ``GET /v1/jobs/{id}/publish``."""
        return {
            "id": self.id, "model": self.model, "version": self.version, "job_id": self.job_id,
            "key_column": self.key_column, "store": self.store, "digest": self.digest,
            "outputs": [c.to_list() for c in self.outputs], "rows": self.rows,
            "state": self.state, "error": self.error, "created_by": self.created_by,
            "computed_at": self.computed_at, "published_at": self.published_at,
            "max_age_s": self.max_age_s,
            "age_s": self.age_s(time.time() if now is None else now),
        }  # fmt: skip


def new_table_id() -> str:
    return f"p-{secrets.token_hex(8)}"


class TableStore:
    """Table records (any store) and the rows of ``db`` tables, in the registry's database
    (its connections and transactions: errors map to RegistryUnavailable as everywhere)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.engine = registry.engine
        self.mark = registry.placeholder

    # -- records -----------------------------------------------------------------------------

    def begin(self, record: TableRecord) -> TableRecord:
        """Insert the record of a table about to be loaded (state ``loading``)."""
        record = replace(record, state="loading")
        with self.registry.transaction(bump=False) as conn:
            conn.execute(T.insert().values(**_values(record)))
        return record

    def activate(self, table_id: str, rows: int) -> list[TableRecord]:
        """Make a loaded table the active one of its version; return those it replaced. The
        audit log records it (``publish_table``, by the record's ``created_by``) in the same
        transaction: requests to the version are answered from the table from now on."""
        with self.registry.transaction(bump=False) as conn:
            new = _record(_one(conn, table_id))
            same = (T.c.model == new.model, T.c.version == new.version, T.c.state == "active")
            old = [_record(r) for r in conn.execute(select(T).where(*same))]
            conn.execute(update(T).where(*same).values(state="replaced"))
            conn.execute(update(T).where(T.c.id == table_id).values(state="active", rows=rows))
            detail = {"job": new.job_id, "rows": rows, "store": new.store, "key": new.key_column}
            replaced = old[0].id if old else None
            self.registry.record_audit(
                conn, new.created_by, "publish_table", new.model, new.version, replaced,
                table_id, detail,
            )  # fmt: skip
        return old

    def fail(self, table_id: str, error: str) -> None:
        with self.registry.transaction(bump=False) as conn:
            conn.execute(update(T).where(T.c.id == table_id).values(state="failed", error=error))

    def get(self, table_id: str) -> TableRecord:
        """Raises TableNotFound."""
        with self.registry.connection() as conn:
            return _record(_one(conn, table_id))

    def active(self, model: str, version: int) -> TableRecord | None:
        """The table requests to ``model`` version ``version`` are answered from, if any."""
        with self.registry.connection() as conn:
            row = conn.execute(
                select(T).where(T.c.model == model, T.c.version == version, T.c.state == "active")
            ).first()
        return None if row is None else _record(row)

    def of_job(self, job_id: str) -> list[TableRecord]:
        """Every publish of a job's output, newest first."""
        with self.registry.connection() as conn:
            stmt = select(T).where(T.c.job_id == job_id).order_by(T.c.published_at.desc())
            return [_record(r) for r in conn.execute(stmt)]

    def remove(self, table_id: str, actor: str = "") -> None:
        """Drop a table's record and its database rows (Redis rows are the caller's); the
        audit log records it (``unpublish_table``)."""
        self.delete_rows(table_id)
        with self.registry.transaction(bump=False) as conn:
            row = conn.execute(select(T).where(T.c.id == table_id)).first()
            if row is None:
                return  # removed meanwhile (a second unpublish): nothing to remove or record
            record = _record(row)
            conn.execute(delete(T).where(T.c.id == table_id))
            detail = {"job": record.job_id, "state": record.state}
            self.registry.record_audit(
                conn, actor, "unpublish_table", record.model, record.version, table_id, None,
                detail,
            )  # fmt: skip

    # -- rows of db tables -------------------------------------------------------------------

    def write_rows(self, table_id: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """Insert one batch of rows in one statement (executemany) and one transaction."""
        values = [{"table_id": table_id, "entity": key, "value": value} for key, value in rows]
        with self.registry.transaction(bump=False) as conn:
            conn.execute(R.insert(), values)

    def lookup(self, table_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The rows of ``keys`` that the table holds (:data:`LOOKUP_MAX_KEYS` per SELECT)."""
        found: dict[str, bytes] = {}
        with self.registry.connection() as conn:
            for start in range(0, len(keys), LOOKUP_MAX_KEYS):
                chunk = tuple(keys[start : start + LOOKUP_MAX_KEYS])
                # Plain SQL on the driver: the Core statement cost three times the query.
                rows = conn.exec_driver_sql(lookup_sql(self.mark, len(chunk)), (table_id, *chunk))
                found.update((entity, bytes(value)) for entity, value in rows)
        return found

    def delete_rows(self, table_id: str, batch: int = 50_000) -> None:
        """Delete a table's rows in batches, so no transaction holds the database for long."""
        while True:
            with self.registry.transaction(bump=False) as conn:
                keys = select(R.c.entity).where(R.c.table_id == table_id).limit(batch)
                done = conn.execute(
                    delete(R).where(
                        R.c.table_id == table_id, R.c.entity.in_(keys.scalar_subquery())
                    )
                ).rowcount
            if done < batch:
                return


@lru_cache(maxsize=1024)
def lookup_sql(mark: str, count: int) -> str:
    """The lookup of ``count`` keys with the driver's placeholder ``mark`` (``?``, ``%s``)."""
    marks = ", ".join([mark] * count)
    return f"SELECT entity, value FROM {R.name} WHERE table_id = {mark} AND entity IN ({marks})"


def _one(conn: Connection, table_id: str) -> Row[Any]:
    row = conn.execute(select(T).where(T.c.id == table_id)).first()
    if row is None:
        raise TableNotFound(f"'{table_id}'")
    return row


def _values(record: TableRecord) -> dict[str, Any]:
    return {
        "id": record.id, "model": record.model, "version": record.version,
        "job_id": record.job_id, "key_column": record.key_column, "store": record.store,
        "digest": record.digest, "outputs": [c.to_list() for c in record.outputs],
        "rows": record.rows, "computed_at": record.computed_at, "max_age_s": record.max_age_s,
        "state": record.state, "error": record.error, "created_by": record.created_by,
        "published_at": record.published_at,
    }  # fmt: skip


def _record(row: Row[Any]) -> TableRecord:
    return TableRecord(
        id=row.id, model=row.model, version=row.version, job_id=row.job_id,
        key_column=row.key_column, store=row.store, digest=row.digest,
        outputs=tuple(OutputColumn.from_list(c) for c in row.outputs),
        computed_at=float(row.computed_at), max_age_s=row.max_age_s, rows=row.rows,
        state=row.state, error=row.error or "", created_by=row.created_by,
        published_at=float(row.published_at),
    )  # fmt: skip


class RowReader:
    """Lookups of ``db`` rows on one driver connection kept open, for the serving path.

    A pooled SQLAlchemy connection per lookup cost twice the query itself (checkout, reset on
    return); this keeps one DBAPI connection and ends each read's transaction at once, so the
    next read sees new publishes. Use it from one thread at a time.
    """

    def __init__(self, store: TableStore) -> None:
        self.store = store
        self._conn: Any = None

    def lookup(self, table_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        """Like :meth:`TableStore.lookup`.

        Raises:
            ConnectionError: the database failed (the connection is opened again next time).
        """
        found: dict[str, bytes] = {}
        try:
            if self._conn is None:
                self._conn = self.store.engine.raw_connection()
            cursor = self._conn.cursor()
            try:
                for start in range(0, len(keys), LOOKUP_MAX_KEYS):
                    chunk = tuple(keys[start : start + LOOKUP_MAX_KEYS])
                    cursor.execute(lookup_sql(self.store.mark, len(chunk)), (table_id, *chunk))
                    found.update((entity, bytes(value)) for entity, value in cursor.fetchall())
            finally:
                cursor.close()
                self._conn.rollback()  # no snapshot kept open between reads
        except Exception as err:
            self.close()
            raise ConnectionError(f"precomputed rows: {err}") from err
        return found

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection: nothing more to release
                logger.debug("closing a failed connection", exc_info=True)
