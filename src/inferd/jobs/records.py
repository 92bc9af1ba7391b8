"""Plain records of batch jobs: states, jobs, chunks and what processing a chunk produced.

JobState       queued -> running -> succeeded | failed | cancelled
JobRecord      one job as the store returns it, with its progress
Chunk          a deterministic unit of input: one file's rows [start_row, start_row + n)
ChunkResult    what a processed chunk wrote
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Life cycle of a batch job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows ``[start_row, start_row + num_rows)`` of input file ``file_index``.

    ``[loc_start, loc_end)`` locates the rows in the file, so any worker reads exactly its
    chunk without scanning the file from the start: a byte range for text inputs (CSV, JSON
    Lines), a range of row groups for Parquet.
    """

    seq: int
    file_index: int
    start_row: int
    num_rows: int
    loc_start: int | None = None
    loc_end: int | None = None

    @property
    def part_name(self) -> str:
        """Stem of the chunk's output part file; the same on every run of the job."""
        return f"part-{self.seq:06d}"


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What processing one chunk wrote: rows with predictions, rows in the errors file."""

    seq: int
    rows_out: int
    rows_failed: int
    part: str


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A batch job and its progress.

    ``rows_done`` rows have predictions in the output, ``rows_failed`` went to the errors
    file; ``rows_total`` is known once the input is planned.
    """

    id: str
    model: str
    version: int
    state: JobState
    spec: dict[str, Any]
    pinned: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    rows_total: int | None = None
    rows_done: int = 0
    rows_failed: int = 0
    chunks_total: int | None = None
    chunks_done: int = 0
    cancel_requested: bool = False
    owner: str = ""
    lease_until: float = 0.0
    attempts: int = 0
    run_rows: int = 0
    run_started_at: float = 0.0
    progress_at: float = 0.0
    created_by: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def rows_processed(self) -> int:
        return self.rows_done + self.rows_failed

    @property
    def output_uri(self) -> str:
        return str(self.spec.get("output", ""))

    def rows_per_s(self, now: float | None = None) -> float | None:
        """Rows processed per second in the current (or last) run."""
        if self.run_started_at <= 0:
            return None
        end = self.progress_at if self.state.terminal or now is None else now
        elapsed = end - self.run_started_at
        rows = self.rows_processed - self.run_rows
        return rows / elapsed if elapsed > 0 and rows > 0 else None

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate; 0 once finished, None while unknown."""
        if self.state.terminal:
            return 0.0
        rate = self.rows_per_s(now)
        if self.rows_total is None or rate is None:
            return None
        return max(self.rows_total - self.rows_processed, 0) / rate

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /v1/jobs/{id}``."""
        data = asdict(self)
        data.pop("plan")
        data.pop("lease_until")
        data["pinned"] = {k: v for k, v in self.pinned.items() if k != "config"}
        for key in ("created_at", "started_at", "finished_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        now = time.time()
        data["state"] = self.state.value
        data["output_uri"] = self.output_uri
        data["rows_per_s"] = self.rows_per_s(now)
        data["eta_s"] = self.eta_s(now)
        return data
