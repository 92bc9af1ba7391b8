"""The job service: submit, list, show, cancel and resume jobs, and run them.

A server runs one ``JobService`` per process with a background scheduler thread: it claims
queued jobs and jobs whose owner died (so a restarted server resumes them), one at a time,
and runs them in low-priority worker processes. Replicas sharing a registry race for a job
through the database claim; exactly one wins. The CLI uses the same service without the
scheduler, running a job in the foreground.

All methods block (database, file listing): call them from a thread in async code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from inferd.config import parse_model_config
from inferd.errors import (
    ConfigError,
    Conflict,
    FrameworkMissing,
    InvalidInput,
    RegistryUnavailable,
)
from inferd.jobs.files import expand_inputs, list_folder
from inferd.jobs.records import JobRecord, JobState
from inferd.jobs.spec import JobSpec, parse_spec
from inferd.jobs.store import JobStore, owner_id
from inferd.jobs.throttle import ActivityProbe
from inferd.registry import Registry, Stage, Status, VersionRecord
from inferd.registry.artifacts import local_path
from inferd.runtimes.trust import check_code_root

logger = logging.getLogger(__name__)

# (spec, loaded runtime) -> Engine; typed loosely so this module needs no pyarrow.
EngineFactory = Callable[[JobSpec, Any], Any]


class JobService:
    """Batch jobs over one registry.

    Args:
        registry: the registry (models, versions, and the job tables).
        artifact_root: artifact store root, for fetching remote artifacts.
        cache_dir: local folder for fetched artifacts.
        in_server: jobs run in worker processes, never in this process.
        poll_s: how often the scheduler looks for claimable jobs.
        lease_s: how long a claim lasts without a heartbeat.
        engine_factory: builds the engine of a job from its spec and loaded runtime; by
            default the local or Ray engine the spec names.
        online_activity: a counter of answered online requests (a server passes one), so
            job workers slow down while it moves (``JobSpec.busy_share``).
        code_roots: folders artifacts that run code may come from (a server passes its
            own); None for no check (``inferd jobs`` on the registry directly: an admin).
    """

    def __init__(
        self,
        registry: Registry,
        artifact_root: str,
        cache_dir: str,
        *,
        in_server: bool = True,
        poll_s: float = 1.0,
        lease_s: float = 30.0,
        engine_factory: EngineFactory | None = None,
        online_activity: Callable[[], int] | None = None,
        code_roots: Sequence[Path] | None = None,
    ) -> None:
        self.registry = registry
        self.code_roots = code_roots
        self.store = JobStore(registry.engine)
        self.owner = owner_id()
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.artifact_root, self.cache_dir, self.in_server = artifact_root, cache_dir, in_server
        self.engine_factory = engine_factory
        self.busy = ActivityProbe(online_activity) if online_activity is not None else None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- requests ----------------------------------------------------------------------------

    def submit(self, data: dict[str, Any] | JobSpec, actor: str = "") -> JobRecord:
        """Validate a job, pin its model version, and queue it.

        Raises:
            InvalidInput: a bad field, inputs that match nothing, a failed version.
            ModelNotFound: no such model or version.
            Conflict: the output folder holds files already (pass ``overwrite``).
        """
        spec = data if isinstance(data, JobSpec) else parse_spec(data)
        expand_inputs(spec.inputs, spec.input_format)  # fail now, not when it runs
        existing = [n for n in list_folder(spec.output) if not n.startswith(".")]
        if existing and not spec.overwrite:
            raise Conflict(
                f"output {spec.output} is not empty ({existing[0]}, ...); choose an "
                "empty folder or pass overwrite"
            )
        record = self._pin(spec)
        model = self.registry.get_model(spec.model)
        if model.config is None:
            raise ConfigError(f"registry model '{spec.model}'", "config", "no model config")
        config = parse_model_config(model.config, f"registry model '{spec.model}'", spec.model)
        check_code_root(config, local_path(record.artifact_uri), self.code_roots)
        pinned = {
            "version": record.version,
            "digest": record.digest,
            # The version's own preprocessing block (inferd.preprocess.versions).
            "config": {**model.config, "preprocessing": record.preprocessing},
            "artifact_uri": record.artifact_uri,
            "platform": record.platform,
        }
        job = self.store.create(spec.model_dump(mode="json"), pinned, record.version, actor)
        logger.info("job %s queued: %s version %d", job.id, spec.model, record.version)
        self._wake.set()
        return job

    def _pin(self, spec: JobSpec) -> VersionRecord:
        if spec.version is not None:
            record = self.registry.get_version(spec.model, spec.version)
        else:
            versions = [
                v for v in self.registry.list_versions(spec.model) if v.stage is not Stage.ARCHIVED
            ]
            production = [v for v in versions if v.stage is Stage.PRODUCTION]
            usable = production or [v for v in versions if v.status is not Status.FAILED]
            if not usable:
                raise InvalidInput("job.version", f"a usable version of '{spec.model}'", "none")
            record = usable[-1]
        if record.status is Status.FAILED:
            raise InvalidInput(
                "job.version",
                "a version that loads",
                f"version {record.version} failed: {record.status_reason}",
            )
        return record

    def get(self, job_id: str) -> JobRecord:
        return self.store.get(job_id)

    def list_jobs(self, state: str | None = None, limit: int = 100) -> list[JobRecord]:
        if state is not None and state not in {s.value for s in JobState}:
            raise InvalidInput("state", f"one of {[s.value for s in JobState]}", repr(state))
        return self.store.list_jobs(state, limit)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job, or ask the process running it to stop after its chunk."""
        return self.store.cancel(job_id)

    def resume(self, job_id: str) -> JobRecord:
        """Queue a failed, cancelled or orphaned job again; it skips its done chunks."""
        job = self.store.requeue(job_id)
        self._wake.set()
        return job

    # -- running -----------------------------------------------------------------------------

    def _run(self, job: JobRecord, interrupt: threading.Event, on_interrupt: JobState) -> JobRecord:
        try:
            from inferd.jobs.runner import JobRunner, default_engine
        except ImportError as err:  # pyarrow: batch jobs are an optional extra
            missing = FrameworkMissing("batch jobs", "jobs", err)
            return self.store.finish(job.id, self.owner, JobState.FAILED, missing.message)
        factory = self.engine_factory or partial(
            default_engine, in_server=self.in_server, busy=self.busy
        )
        runner = JobRunner(
            self.store, self.artifact_root, self.cache_dir, self.owner, self.lease_s, factory
        )
        return runner.run(job, interrupt, on_interrupt)

    def run_here(self, job_id: str, interrupt: threading.Event) -> JobRecord:
        """Claim a job and run it in this process (the CLI's foreground run).

        Raises:
            Conflict: another live process holds the job.
        """
        job = self.store.claim(job_id, self.owner, self.lease_s)
        if job is None:
            current = self.store.get(job_id)
            raise Conflict(
                f"job '{job_id}' is {current.state.value}"
                + (f" in {current.owner}" if current.owner else "")
            )
        return self._run(job, interrupt, JobState.FAILED)

    def start(self) -> None:
        """Start the scheduler thread (servers)."""
        self._thread = threading.Thread(target=self._schedule, name="job-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the scheduler; a running job is released to the queue, resumable elsewhere."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _schedule(self) -> None:
        warned = migrated = False
        while True:
            # Wait first: a starting server loads its models before jobs take its CPU.
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                if not migrated:  # the job tables may be newer than the database
                    migrated = bool(self.registry.migrate())
                self._run_claimable()
                warned = False
            except RegistryUnavailable as err:
                if not warned:
                    logger.error("jobs: %s", err.message)
                warned = True
            except Exception:
                logger.exception("jobs: scheduling failed; retrying in %.1f s", self.poll_s)

    def _run_claimable(self) -> None:
        for job_id in self.store.claimable():
            if self._stopping.is_set():
                return
            job = self.store.claim(job_id, self.owner, self.lease_s)
            if job is None:
                continue
            logger.info("job %s: running (attempt %d)", job.id, job.attempts)
            self._run(job, self._stopping, JobState.QUEUED)
