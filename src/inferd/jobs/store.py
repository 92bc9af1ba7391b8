"""Job state in the registry database: jobs, their planned chunks, claims and progress.

One process runs a job at a time. It *claims* the job with a conditional UPDATE (compare and
set on state, owner and lease), then keeps a lease alive with heartbeats. Another process may
take a job over only when that lease has run out, or at once when the owner is a process of
this host that no longer exists (``kill -9``). Every progress write checks the owner, so a
process that lost its claim cannot record anything more.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from inferd.errors import Conflict, InferdError
from inferd.jobs.records import Chunk, ChunkResult, JobRecord, JobState
from inferd.registry import schema
from inferd.registry.store import database_errors

J, C = schema.jobs, schema.job_chunks


class JobNotFound(InferdError):
    """No job has this id."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job '{job_id}' not found; `inferd jobs list` shows the jobs")


class LeaseLost(InferdError):
    """Another process took the job over; this one must stop writing."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job '{job_id}': claimed by another process; stopping here")


def owner_id() -> str:
    """``host:pid:nonce`` naming this process as a job's owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host: only its lease running out tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def new_job_id() -> str:
    return f"j-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class JobStore:
    """Jobs and chunks over a registry engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads -------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        """Raises JobNotFound."""
        with self._read() as conn:
            return _record(self._row(conn, job_id))

    def list_jobs(self, state: str | None = None, limit: int = 100) -> list[JobRecord]:
        """Jobs, newest first."""
        with self._read() as conn:
            stmt = select(J).order_by(J.c.created_at.desc(), J.c.id.desc()).limit(limit)
            if state:
                stmt = stmt.where(J.c.state == JobState(state))
            return [_record(r) for r in conn.execute(stmt)]

    def claimable(self) -> list[str]:
        """Queued jobs and running jobs whose lease ran out, oldest first."""
        with self._read() as conn:
            stmt = select(J.c.id, J.c.state, J.c.owner, J.c.lease_until).where(
                J.c.state.in_([JobState.QUEUED, JobState.RUNNING])
            )
            rows = conn.execute(stmt.order_by(J.c.created_at, J.c.id)).all()
        now = time.time()
        return [
            r.id
            for r in rows
            if r.state == JobState.QUEUED or r.lease_until < now or owner_is_dead(r.owner)
        ]

    def chunks(self, job_id: str, *, done: bool | None = None) -> list[tuple[Chunk, ChunkResult]]:
        """The planned chunks in order, with what each wrote (zeros while not done)."""
        with self._read() as conn:
            stmt = select(C).where(C.c.job_id == job_id).order_by(C.c.seq)
            if done is not None:
                stmt = stmt.where(C.c.done == done)
            return [
                (
                    Chunk(r.seq, r.file_index, r.start_row, r.num_rows, r.loc_start, r.loc_end),
                    ChunkResult(r.seq, r.rows_out, r.rows_failed, r.part),
                )
                for r in conn.execute(stmt)
            ]

    # -- changes -----------------------------------------------------------------------------

    def create(
        self, spec: dict[str, Any], pinned: dict[str, Any], version: int, actor: str
    ) -> JobRecord:
        """Insert a queued job."""
        job_id = new_job_id()
        with self._write() as conn:
            conn.execute(
                J.insert().values(
                    id=job_id,
                    model=spec["model"],
                    version=version,
                    state=JobState.QUEUED,
                    spec=spec,
                    pinned=pinned,
                    created_by=actor or "anonymous",
                    created_at=datetime.now(UTC),
                )
            )
            return _record(self._row(conn, job_id))

    def claim(self, job_id: str, owner: str, lease_s: float) -> JobRecord | None:
        """Take the job if it is queued or its owner is gone; None if someone else holds it."""
        with self._write() as conn:
            row = self._row(conn, job_id)
            if row.state not in (JobState.QUEUED, JobState.RUNNING):
                return None
            if row.state == JobState.RUNNING and not (
                row.lease_until < time.time() or owner_is_dead(row.owner)
            ):
                return None
            now = time.time()
            claimed = conn.execute(
                update(J)
                .where(
                    J.c.id == job_id,
                    J.c.state == row.state,
                    J.c.owner == row.owner,
                    J.c.lease_until == row.lease_until,
                )
                .values(
                    state=JobState.RUNNING,
                    owner=owner,
                    lease_until=now + lease_s,
                    attempts=J.c.attempts + 1,
                    run_rows=J.c.rows_done + J.c.rows_failed,
                    run_started_at=now,
                    progress_at=now,
                    error="",
                    started_at=row.started_at or datetime.now(UTC),
                )
            ).rowcount
            return _record(self._row(conn, job_id)) if claimed == 1 else None

    def heartbeat(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Extend the lease; returns whether a cancel was requested. Raises LeaseLost."""
        with self._write() as conn:
            self._extend(conn, job_id, owner, lease_s)
            return bool(conn.execute(select(J.c.cancel_requested).where(J.c.id == job_id)).scalar())

    def save_plan(self, job_id: str, owner: str, plan: dict[str, Any], chunks: list[Chunk]) -> None:
        """Record the plan and its chunks once, in one transaction. Raises LeaseLost."""
        with self._write() as conn:
            self._extend(conn, job_id, owner, None)
            conn.execute(
                update(J)
                .where(J.c.id == job_id)
                .values(
                    plan=plan, chunks_total=len(chunks), rows_total=sum(c.num_rows for c in chunks)
                )
            )
            rows = [
                {
                    "job_id": job_id,
                    "seq": c.seq,
                    "file_index": c.file_index,
                    "start_row": c.start_row,
                    "num_rows": c.num_rows,
                    "loc_start": c.loc_start,
                    "loc_end": c.loc_end,
                    "done": False,
                    "rows_out": 0,
                    "rows_failed": 0,
                    "part": "",
                }
                for c in chunks
            ]
            if rows:
                conn.execute(C.insert(), rows)

    def finish_chunk(self, job_id: str, owner: str, result: ChunkResult) -> JobRecord:
        """Mark a chunk done (its part file is already in place) and count its rows.

        A chunk already done (a retried Ray task) is not counted twice. Raises LeaseLost.
        """
        with self._write() as conn:
            self._extend(conn, job_id, owner, None)
            marked = conn.execute(
                update(C)
                .where(C.c.job_id == job_id, C.c.seq == result.seq, C.c.done.is_(False))
                .values(
                    done=True,
                    rows_out=result.rows_out,
                    rows_failed=result.rows_failed,
                    part=result.part,
                )
            ).rowcount
            if marked == 1:
                conn.execute(
                    update(J)
                    .where(J.c.id == job_id)
                    .values(
                        rows_done=J.c.rows_done + result.rows_out,
                        rows_failed=J.c.rows_failed + result.rows_failed,
                        chunks_done=J.c.chunks_done + 1,
                        progress_at=time.time(),
                    )
                )
            return _record(self._row(conn, job_id))

    def finish(self, job_id: str, owner: str, state: JobState, error: str = "") -> JobRecord:
        """End a run: a final state, or back to queued (released for another process)."""
        values: dict[str, Any] = {"state": state, "error": error, "owner": "", "lease_until": 0.0}
        if state.terminal:
            values |= {"finished_at": datetime.now(UTC), "cancel_requested": False}
        with self._write() as conn:
            done = conn.execute(
                update(J).where(J.c.id == job_id, J.c.owner == owner).values(**values)
            ).rowcount
            if done != 1:
                raise LeaseLost(job_id)
            if state is JobState.SUCCEEDED:  # counts as actually read (blank lines skipped)
                conn.execute(
                    update(J)
                    .where(J.c.id == job_id)
                    .values(rows_total=J.c.rows_done + J.c.rows_failed)
                )
            return _record(self._row(conn, job_id))

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once; ask a running one to stop. Raises Conflict if done."""
        with self._write() as conn:
            row = self._row(conn, job_id)
            state = JobState(row.state)
            if state.terminal:
                raise Conflict(f"job '{job_id}' is {state.value} already; nothing to cancel")
            alive = (
                state is JobState.RUNNING
                and row.lease_until >= time.time()
                and not (owner_is_dead(row.owner))
            )
            values: dict[str, Any] = {"cancel_requested": True}
            if not alive:  # nobody runs it: cancelled now
                values |= {
                    "state": JobState.CANCELLED,
                    "owner": "",
                    "lease_until": 0.0,
                    "finished_at": datetime.now(UTC),
                }
            conn.execute(update(J).where(J.c.id == job_id).values(**values))
            return _record(self._row(conn, job_id))

    def requeue(self, job_id: str) -> JobRecord:
        """Queue a failed or cancelled job again; it continues after its last done chunk.

        Raises:
            Conflict: the job succeeded, or another live process runs it.
        """
        with self._write() as conn:
            row = self._row(conn, job_id)
            state = JobState(row.state)
            if state is JobState.SUCCEEDED:
                raise Conflict(f"job '{job_id}' succeeded already; nothing to resume")
            if (
                state is JobState.RUNNING
                and row.lease_until >= time.time()
                and not (owner_is_dead(row.owner))
            ):
                raise Conflict(f"job '{job_id}' is running in {row.owner}; cancel it first")
            conn.execute(
                update(J)
                .where(J.c.id == job_id)
                .values(
                    state=JobState.QUEUED,
                    cancel_requested=False,
                    error="",
                    owner="",
                    lease_until=0.0,
                    finished_at=None,
                )
            )
            return _record(self._row(conn, job_id))

    # -- internals ---------------------------------------------------------------------------

    def _extend(self, conn: Connection, job_id: str, owner: str, lease_s: float | None) -> None:
        # Matching the owner makes every progress write a check that the claim still holds.
        values: dict[str, Any] = {"owner": owner}
        if lease_s is not None:
            values["lease_until"] = time.time() + lease_s
        held = conn.execute(
            update(J)
            .where(J.c.id == job_id, J.c.owner == owner, J.c.state == JobState.RUNNING)
            .values(**values)
        ).rowcount
        if held != 1:
            raise LeaseLost(job_id)

    def _row(self, conn: Connection, job_id: str) -> Row[Any]:
        row = conn.execute(select(J).where(J.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        return row

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with database_errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with database_errors(), self.engine.begin() as conn:
            yield conn


def _record(row: Row[Any]) -> JobRecord:
    return JobRecord(
        id=row.id,
        model=row.model,
        version=row.version,
        state=JobState(row.state),
        spec=dict(row.spec or {}),
        pinned=dict(row.pinned or {}),
        error=row.error or "",
        rows_total=row.rows_total,
        rows_done=row.rows_done,
        rows_failed=row.rows_failed,
        chunks_total=row.chunks_total,
        chunks_done=row.chunks_done,
        cancel_requested=bool(row.cancel_requested),
        owner=row.owner,
        lease_until=float(row.lease_until),
        attempts=row.attempts,
        run_rows=row.run_rows,
        run_started_at=float(row.run_started_at),
        progress_at=float(row.progress_at),
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        plan=row.plan,
    )
