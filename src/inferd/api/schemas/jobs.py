"""Bodies of ``/v1/jobs``: the job request is :class:`inferd.jobs.spec.JobSpec` itself,
the model the server validates with, so the document cannot drift from it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from inferd.api.schemas._operation import LIMIT, Operation, Param
from inferd.jobs.publish import PublishSpec
from inferd.jobs.spec import JobSpec

Time = str | None  # ISO 8601; null while not yet


class JobRecord(BaseModel):
    """A batch job and its progress."""

    id: str
    model: str
    version: int
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    spec: dict[str, Any] = Field(description="the JobSpec as submitted, defaults filled in")
    pinned: dict[str, Any] = Field(description="what the job resolved at start (version, ...)")
    error: str
    rows_total: int | None = Field(description="known once the input is planned")
    rows_done: int = Field(ge=0, description="rows with predictions in the output")
    rows_failed: int = Field(ge=0, description="rows written to the errors file")
    chunks_total: int | None
    chunks_done: int = Field(ge=0)
    cancel_requested: bool
    owner: str
    attempts: int = Field(ge=0)
    run_rows: int = Field(ge=0)
    run_started_at: float = Field(description="seconds since the epoch; 0: not started")
    progress_at: float
    created_by: str
    created_at: Time
    started_at: Time
    finished_at: Time
    output_uri: str
    rows_per_s: float | None
    eta_s: float | None = Field(description="seconds left; 0 once finished, null while unknown")


class PublishedTable(BaseModel):
    """A job's output published as its model version's precomputed table."""

    id: str = Field(description="the table id (a new one per publish)")
    model: str
    version: int
    job_id: str
    key_column: str = Field(description="the column whose values are the entity ids")
    store: Literal["db", "redis"]
    digest: str = Field(description="artifact digest of the version that computed the rows")
    outputs: list[list[Any]] = Field(description="[name, numpy dtype, per-row shape] per output")
    rows: int = Field(ge=0)
    state: Literal["loading", "active", "replaced", "failed", "deleted"]
    error: str
    created_by: str
    computed_at: float = Field(description="seconds since the epoch: when the job finished")
    published_at: float
    max_age_s: float | None = Field(description="older entries are not served; null: no limit")
    age_s: float = Field(description="seconds since computed_at")


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/jobs", "list_jobs", "batch jobs, newest first", "jobs",
              {200: list[JobRecord]},
              params=(Param("state", "query", str, "only jobs in this state"), LIMIT)),
    Operation("POST", "/v1/jobs", "submit_job", "submit a batch inference job", "jobs",
              {201: JobRecord}, body=JobSpec),
    Operation("GET", "/v1/jobs/{job_id}", "get_job", "a job and its progress", "jobs",
              {200: JobRecord}),
    Operation("POST", "/v1/jobs/{job_id}/cancel", "cancel_job", "cancel a job", "jobs",
              {200: JobRecord}),
    Operation("POST", "/v1/jobs/{job_id}/resume", "resume_job",
              "resume a failed or cancelled job", "jobs", {200: JobRecord}),
    Operation("POST", "/v1/jobs/{job_id}/publish", "publish_job",
              "publish a succeeded job's output as its version's precomputed table", "jobs",
              {201: PublishedTable}, body=PublishSpec),
    Operation("GET", "/v1/jobs/{job_id}/publish", "get_published_table",
              "the precomputed table published from a job", "jobs", {200: PublishedTable}),
    Operation("DELETE", "/v1/jobs/{job_id}/publish", "unpublish_job",
              "remove the precomputed tables published from a job", "jobs",
              {200: PublishedTable}),
)  # fmt: skip
