"""Publishing a finished job's output as its model version's precomputed table.

    inferd jobs publish JOB --key user_id [--store db|redis] [--max-age 1d]

The job must have succeeded and must have passed the key column through (``--passthrough
user_id``): each part's rows become table rows keyed by that column, loaded in batches
(one executemany per batch into the registry database, or pipelined MSETs into Redis) under a
new table id, then made the version's active table in one update; the table it replaces is
deleted after. Serving: :mod:`inferd.resilience.precomputed`.

All methods block (database, files, Redis): call them from a thread in async code.
"""

from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferd.errors import InvalidInput
from inferd.jobs.files import open_fs
from inferd.jobs.records import JobRecord, JobState
from inferd.jobs.store import JobStore
from inferd.registry import Registry
from inferd.resilience.layout import OutputColumn, RowLayout
from inferd.resilience.table_redis import RedisRowWriter
from inferd.resilience.tables import TableNotFound, TableRecord, TableStore, new_table_id

logger = logging.getLogger(__name__)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_KEY_CHARS = 300  # precomputed_rows.entity


class PublishSpec(BaseModel):
    """What ``POST /v1/jobs/{id}/publish`` (and ``inferd jobs publish``) asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    key: str = Field(min_length=1, description="The passthrough column holding the entity id.")
    model: str | None = Field(None, description="Checked against the job's model.")
    version: int | None = Field(None, ge=1, description="Checked against the job's version.")
    store: Literal["db", "redis"] = Field("db", description="Registry database or Redis.")
    max_age: str | float | None = Field(
        None, description="Entries older than this are not served: seconds, or 90s, 30m, 12h, 1d."
    )


def parse_publish(data: Any) -> PublishSpec:
    """Validate a publish request.

    Raises:
        InvalidInput: naming the first bad field, e.g. ``publish.store``.
    """
    if not isinstance(data, dict):
        raise InvalidInput("publish", "a JSON object", type(data).__name__)
    try:
        spec = PublishSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        got = repr(first.get("input"))[:80] if first["type"] != "missing" else "nothing"
        raise InvalidInput(f"publish.{field}", first["msg"].lower(), got) from err
    max_age_s(spec.max_age)  # refuse a bad duration now
    return spec


def max_age_s(value: str | float | None) -> float | None:
    """Seconds of a max age given as a number or ``90s``, ``30m``, ``12h``, ``1d``, ``2w``.

    Raises:
        InvalidInput: anything else, or not above zero.
    """
    if value is None:
        return None
    expected = "a duration above zero such as 3600, 90s, 30m, 12h or 1d"
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _AGE.match(str(value))
        if match is None:
            raise InvalidInput("max_age", expected, repr(value))
        seconds = float(match[1]) * _UNIT_S[match[2] or "s"]
    if seconds <= 0:
        raise InvalidInput("max_age", expected, repr(value))
    return seconds


class RowWriter(Protocol):
    def write_rows(self, table_id: str, rows: list[tuple[str, bytes]]) -> None: ...


class Publisher:
    """Publishes job outputs as precomputed tables and removes them.

    Args:
        registry: the registry (jobs, versions, table records, ``db`` rows).
        redis_url: where ``redis`` tables go (the server's ``--cache-redis-url``).
        batch_rows: rows per write (one executemany or one pipeline).
    """

    def __init__(
        self, registry: Registry, redis_url: str | None = None, batch_rows: int = 10_000
    ) -> None:
        self.registry = registry
        self.redis_url = redis_url
        self.batch_rows = batch_rows
        self.jobs = JobStore(registry.engine)
        self.tables = TableStore(registry)

    def publish(
        self, job_id: str, data: dict[str, Any] | PublishSpec, actor: str = ""
    ) -> TableRecord:
        """Load the job's output as its version's table and make it the active one.

        Raises:
            JobNotFound: no such job.
            InvalidInput: the job has not succeeded, the key column is not in its output,
                the model or version is not the job's, a bad key value.
            ModelNotFound: the job's version was deleted.
        """
        spec = data if isinstance(data, PublishSpec) else parse_publish(data)
        job = self.jobs.get(job_id)
        digest = self._check(job, spec)
        parts, columns = self._plan(job)
        redis = self._redis() if spec.store == "redis" else None
        record = self.tables.begin(TableRecord(
            new_table_id(), job.model, job.version, job.id, spec.key, spec.store, digest,
            columns, _epoch(job.finished_at), max_age_s(spec.max_age),
            created_by=actor or "anonymous",
        ))  # fmt: skip
        try:
            writer: RowWriter = redis if redis is not None else self.tables
            rows = self._load(record, job.output_uri, parts, writer)
        except BaseException as err:
            self.tables.fail(record.id, str(err))
            self._drop_rows(record, redis)
            raise
        finally:
            if redis is not None:
                redis.close()
        for old in self.tables.activate(record.id, rows):
            self._drop_rows(old, None)
        logger.info("job %s published as table %s of model '%s' version %d: %d rows (%s)",
                    job.id, record.id, job.model, job.version, rows, spec.store)  # fmt: skip
        return self.tables.get(record.id)

    def status(self, job_id: str) -> TableRecord:
        """The newest table published from the job. Raises TableNotFound."""
        found = self.tables.of_job(job_id)
        if not found:
            raise TableNotFound(f"published from job '{job_id}'")
        return found[0]

    def unpublish(self, job_id: str, actor: str = "") -> TableRecord:
        """Remove every table published from the job, rows included; return the newest."""
        found = self.tables.of_job(job_id)
        if not found:
            raise TableNotFound(f"published from job '{job_id}'")
        for record in found:
            self._drop_rows(record, None)
            self.tables.remove(record.id, actor)
        return replace(found[0], state="deleted")

    # -- checks ----------------------------------------------------------------------------

    def _check(self, job: JobRecord, spec: PublishSpec) -> str:
        """Everything that would make the table wrong, before a row is written; the digest."""
        if job.state is not JobState.SUCCEEDED:
            raise InvalidInput(f"job '{job.id}'", "a job that succeeded", job.state.value)
        if spec.model is not None and spec.model != job.model:
            raise InvalidInput("model", f"'{job.model}', the model job {job.id} ran", spec.model)
        if spec.version is not None and spec.version != job.version:
            raise InvalidInput(
                "version", f"{job.version}, the version job {job.id} ran", str(spec.version)
            )
        digest = str(job.pinned.get("digest", ""))
        current = self.registry.get_version(job.model, job.version).digest
        if digest and current != digest:
            raise InvalidInput(f"version {job.version} of '{job.model}'",
                               f"artifact {digest} (what job {job.id} ran)", current)  # fmt: skip
        passthrough = list(job.spec.get("passthrough", []))
        if spec.key not in passthrough:
            listed = ", ".join(passthrough) or "none"
            raise InvalidInput(
                "key", f"a column job {job.id} passed through ({listed}); run the job with "
                f"--passthrough {spec.key}", repr(spec.key),
            )  # fmt: skip
        return digest

    def _plan(self, job: JobRecord) -> tuple[list[str], tuple[OutputColumn, ...]]:
        """The job's part files (from its manifest) and the table's output columns."""
        import orjson

        from inferd.jobs.publish_parts import output_columns
        from inferd.jobs.sinks import MANIFEST  # pyarrow: only when publishing

        fs, root = open_fs(job.output_uri)
        with fs.open(posixpath.join(root, MANIFEST), "rb") as handle:
            manifest = orjson.loads(handle.read())
        parts = [posixpath.join(root, p["path"]) for p in manifest["parts"] if p["rows"] > 0]
        names = list((job.plan or {}).get("outputs", []))
        declared = {o["name"]: o for o in (job.pinned.get("config") or {}).get("outputs", [])}
        return parts, output_columns(fs, parts, names, declared, job.spec.get("output_format"))

    # -- rows ------------------------------------------------------------------------------

    def _load(self, record: TableRecord, output: str, parts: list[str], writer: RowWriter) -> int:
        from inferd.jobs.publish_parts import read_rows

        layout = RowLayout(record.outputs)
        seen: dict[str, str] = {}
        total = 0
        fs, _ = open_fs(output)  # the parts' paths are within the output's filesystem
        for part, keys, arrays in read_rows(fs, parts, record, self.batch_rows):
            _check_keys(record.key_column, keys, part, seen)
            writer.write_rows(record.id, list(zip(keys, layout.encode(arrays), strict=True)))
            total += len(keys)
        return total

    def _redis(self) -> RedisRowWriter:
        if self.redis_url is None:
            raise InvalidInput(
                "store", "a Redis URL for store 'redis' (--redis-url, or the server's "
                "--cache-redis-url)", "none",
            )  # fmt: skip
        return RedisRowWriter(self.redis_url)

    def _drop_rows(self, record: TableRecord, redis: RedisRowWriter | None) -> None:
        if record.store == "db":
            self.tables.delete_rows(record.id)
            return
        writer = redis or (RedisRowWriter(self.redis_url) if self.redis_url else None)
        if writer is None:
            logger.warning("table %s: its Redis rows stay (no Redis URL here)", record.id)
            return
        try:
            writer.delete_rows(record.id)
        finally:
            if writer is not redis:
                writer.close()


def _epoch(when: datetime | None) -> float:
    """Seconds since the epoch of a stored time (SQLite gives it back without its UTC zone)."""
    if when is None:
        return 0.0
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def _check_keys(column: str, keys: list[str], part: str, seen: dict[str, str]) -> None:
    name = posixpath.basename(part)
    for key in keys:
        if len(key) > MAX_KEY_CHARS:
            raise InvalidInput(f"column '{column}'", f"ids of at most {MAX_KEY_CHARS} characters",
                               f"{len(key)} characters in {name}")  # fmt: skip
        if key in seen:
            raise InvalidInput(f"column '{column}'", "one row per id",
                               f"'{key}' in {seen[key]} and {name}")  # fmt: skip
        seen[key] = name
