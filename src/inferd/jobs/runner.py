"""Run one claimed job to its end: load the pinned model, plan once, process, finish.

The plan (files, column bindings, chunks) is written to the database once, the first time
the job runs; every later run (a resume) reads the same plan and processes only the chunks
not marked done. A heartbeat thread keeps the claim alive and notices a cancel request.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from inferd.errors import InferdError, InvalidInput, RegistryUnavailable
from inferd.jobs.engine import Engine, group_runs
from inferd.jobs.files import InputFile, expand_inputs
from inferd.jobs.local import LocalEngine
from inferd.jobs.mapping import Binding, read_types, resolve_bindings
from inferd.jobs.processor import JobContext, ModelRef, load_runtime
from inferd.jobs.records import Chunk, ChunkResult, JobRecord, JobState
from inferd.jobs.sinks import PartWriter
from inferd.jobs.sources import file_schema, header_end, plan_file
from inferd.jobs.spec import JobSpec, parse_spec
from inferd.jobs.store import JobStore, LeaseLost
from inferd.preprocess.runtime import PreprocessedRuntime
from inferd.runtimes import Runtime

logger = logging.getLogger(__name__)

# (spec, the runtime loaded to plan the job or None) -> Engine. The engine owns the runtime.
EngineFactory = Callable[[JobSpec, Runtime | None], Engine]


def default_engine(
    spec: JobSpec,
    runtime: Runtime | None,
    *,
    in_server: bool,
    busy: Callable[[], bool] | None = None,
) -> Engine:
    """The engine a spec asks for; inside a server the local engine always uses processes,
    slowed to ``spec.busy_share`` of a CPU each while ``busy()`` (online requests) is true."""
    in_process = spec.engine == "local" and spec.parallelism == 1 and not in_server
    if runtime is not None and not in_process:
        runtime.unload()  # workers load their own copies; a server keeps only what it serves
        runtime = None
    if spec.engine == "ray":
        from inferd.jobs.ray_engine import RayEngine

        return RayEngine(spec.parallelism, spec.ray_address)
    return LocalEngine(
        spec.parallelism, spec.nice, in_process=in_process, runtime=runtime,
        busy=busy if in_server else None, busy_share=spec.busy_share,
    )  # fmt: skip


class _Heartbeat(threading.Thread):
    def __init__(self, store: JobStore, job_id: str, owner: str, lease_s: float) -> None:
        super().__init__(name=f"job-heartbeat-{job_id}", daemon=True)
        self.store, self.job_id, self.owner, self.lease_s = store, job_id, owner, lease_s
        self.cancelled = self.lost = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.lease_s / 3):
            try:
                self.cancelled = self.store.heartbeat(self.job_id, self.owner, self.lease_s)
            except LeaseLost:
                self.lost = True
                return
            except RegistryUnavailable as err:  # the claim may lapse; progress writes tell
                logger.warning("job %s: heartbeat failed: %s", self.job_id, err.message)


class JobRunner:
    """Runs claimed jobs in this process.

    Args:
        store: the job store.
        artifact_root: artifact store root (for fetching remote artifacts).
        cache_dir: local cache of fetched artifacts.
        owner: this process's owner id (the one the job was claimed with).
        lease_s: claim lease; heartbeats renew it every third of it.
        engine_factory: builds the engine for a job.
    """

    def __init__(
        self,
        store: JobStore,
        artifact_root: str,
        cache_dir: str,
        owner: str,
        lease_s: float,
        engine_factory: EngineFactory,
    ) -> None:
        self.store, self.owner, self.lease_s = store, owner, lease_s
        self.artifact_root, self.cache_dir = artifact_root, cache_dir
        self.engine_factory = engine_factory

    def run(self, job: JobRecord, interrupt: threading.Event, on_interrupt: JobState) -> JobRecord:
        """Run a job this process claimed; returns it in its final (or released) state.

        Args:
            job: the claimed job.
            interrupt: set to stop early (shutdown, Ctrl-C); the job then goes to
                ``on_interrupt`` (queued for another process, or failed), resumable.
            on_interrupt: the state an interrupted job is left in.
        """
        beat = _Heartbeat(self.store, job.id, self.owner, self.lease_s)
        beat.start()
        runtime: Runtime | None = None
        try:
            spec = parse_spec(job.spec)
            ref = ModelRef(
                job.id,
                job.model,
                dict(job.pinned["config"]),
                job.pinned["artifact_uri"],
                job.pinned["digest"],
                self.artifact_root,
                self.cache_dir,
            )
            # The model's signature binds columns to inputs: needed to plan, not to resume.
            plan = job.plan
            if plan is None:
                runtime = load_runtime(ref)
                plan = self._plan(job, spec, runtime)
            ctx = _context(ref, spec, plan)
            engine, runtime = self.engine_factory(spec, runtime), None
            return self._process(job, spec, ctx, engine, beat, interrupt, on_interrupt)
        except LeaseLost as err:
            logger.warning("%s", err.message)
            return self.store.get(job.id)
        except Exception as err:
            message = (
                err.message if isinstance(err, InferdError) else f"{type(err).__name__}: {err}"
            )
            if not isinstance(err, InferdError):
                logger.exception("job %s failed", job.id)
            return self._end(job.id, JobState.FAILED, message)
        finally:
            beat.done.set()
            if runtime is not None:
                runtime.unload()

    def _process(
        self,
        job: JobRecord,
        spec: JobSpec,
        ctx: JobContext,
        engine: Engine,
        beat: _Heartbeat,
        interrupt: threading.Event,
        on_interrupt: JobState,
    ) -> JobRecord:
        writer = PartWriter(spec.output, spec.output_format)
        writer.prepare()
        writer.remove_temporaries()
        pending = [chunk for chunk, _ in self.store.chunks(job.id, done=False)]
        current = self.store.get(job.id)
        allowed = spec.max_error_rate * (current.rows_total or 0)
        over = threading.Event()

        def on_done(result: ChunkResult) -> None:
            record = self.store.finish_chunk(job.id, self.owner, result)
            if record.rows_failed > allowed:
                over.set()
            beat.cancelled = beat.cancelled or record.cancel_requested

        def stop() -> bool:
            return beat.cancelled or beat.lost or over.is_set() or interrupt.is_set()

        if current.rows_failed > allowed:
            over.set()
        if not stop():
            engine.run(ctx, group_runs(pending), on_done, stop)
        return self._outcome(job, spec, ctx, beat, over, interrupt, on_interrupt)

    def _outcome(
        self,
        job: JobRecord,
        spec: JobSpec,
        ctx: JobContext,
        beat: _Heartbeat,
        over: threading.Event,
        interrupt: threading.Event,
        on_interrupt: JobState,
    ) -> JobRecord:
        if beat.lost:
            raise LeaseLost(job.id)
        current = self.store.get(job.id)
        if over.is_set():
            return self._end(job.id, JobState.FAILED, _too_many(current, spec))
        if beat.cancelled or current.cancel_requested:
            return self._end(job.id, JobState.CANCELLED, "cancelled")
        if interrupt.is_set():
            note = "interrupted; `inferd jobs resume` continues it"
            return self._end(job.id, on_interrupt, note if on_interrupt.terminal else "")
        left = self.store.chunks(job.id, done=False)
        if left:
            return self._end(job.id, JobState.FAILED, f"{len(left)} chunks were not processed")
        self._write_manifest(job, spec, ctx)
        return self._end(job.id, JobState.SUCCEEDED)

    def _end(self, job_id: str, state: JobState, error: str = "") -> JobRecord:
        record = self.store.finish(job_id, self.owner, state, error)
        logger.info("job %s: %s%s", job_id, state.value, f" ({error})" if error else "")
        return record

    def _plan(self, job: JobRecord, spec: JobSpec, runtime: Runtime) -> dict[str, Any]:
        files = expand_inputs(spec.inputs, spec.input_format)
        formats = {f.format for f in files}
        if len(formats) > 1:
            raise InvalidInput("inputs", "files of one format", f"{sorted(formats)}")
        schema = file_schema(files[0])
        nullable = runtime.raw_columns if isinstance(runtime, PreprocessedRuntime) else ()
        bindings = resolve_bindings(
            runtime.signature(), schema, spec.columns, spec.passthrough, nullable
        )
        read_schema = read_types(bindings, schema, spec.passthrough, files[0].format != "parquet")
        for file in files[1:]:
            missing = [n for n in read_schema.names if n not in file_schema(file).names]
            if missing:
                raise InvalidInput(
                    f"input {file.uri}", f"columns {read_schema.names}", f"none named {missing}"
                )
        chunks: list[Chunk] = []
        for index, file in enumerate(files):
            chunks.extend(plan_file(file, index, len(chunks), spec.chunk_rows))
        plan = {
            "files": [f.to_dict() for f in files],
            "header_ends": [header_end(f) for f in files],
            "bindings": [b.to_dict() for b in bindings],
            "schema": base64.b64encode(read_schema.serialize().to_pybytes()).decode(),
            "outputs": [s.name for s in runtime.signature().outputs],
        }
        self.store.save_plan(job.id, self.owner, plan, chunks)
        return plan

    def _write_manifest(self, job: JobRecord, spec: JobSpec, ctx: JobContext) -> None:
        chunks = self.store.chunks(job.id)
        record = self.store.get(job.id)
        rows_in = [0] * len(ctx.files)
        for chunk, result in chunks:
            rows_in[chunk.file_index] += result.rows_out + result.rows_failed
        manifest = {
            "job_id": job.id,
            "model": job.model,
            "version": job.version,
            "digest": job.pinned["digest"],
            "platform": job.pinned.get("platform"),
            "engine": spec.engine,
            "created_at": _iso(record.created_at),
            "finished_at": datetime.now(UTC).isoformat(),
            "inputs": [
                {"uri": f.uri, "format": f.format, "rows": n}
                for f, n in zip(ctx.files, rows_in, strict=True)
            ],
            "columns": {b.input: list(b.columns) for b in ctx.bindings},
            "passthrough": spec.passthrough,
            "output_format": spec.output_format,
            "rows": {
                "total": record.rows_processed,
                "written": record.rows_done,
                "failed": record.rows_failed,
            },
            "parts": [
                {
                    "path": r.part,
                    "rows": r.rows_out,
                    "failed": r.rows_failed,
                    "input": ctx.files[c.file_index].uri,
                    "first_row": c.start_row,
                }
                for c, r in chunks
            ],
            "errors": "_errors/",
        }
        PartWriter(spec.output, spec.output_format).write_manifest(manifest)


def _context(ref: ModelRef, spec: JobSpec, plan: dict[str, Any]) -> JobContext:
    files = [InputFile(**f) for f in plan["files"]]
    for file in files:  # a resumed job must read the very bytes it planned
        size = expand_inputs([file.uri], file.format)[0].size
        if size != file.size:
            raise InvalidInput(
                f"input {file.uri}",
                f"{file.size} bytes as when the job started",
                f"{size} bytes; the file changed, start a new job",
            )
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(plan["schema"])))
    return JobContext(
        model=ref,
        files=files,
        header_ends=list(plan["header_ends"]),
        bindings=[Binding.from_dict(b) for b in plan["bindings"]],
        read_schema=schema,
        passthrough=list(spec.passthrough),
        output=spec.output,
        output_format=spec.output_format,
        batch_size=spec.batch_size,
    )


def _too_many(record: JobRecord, spec: JobSpec) -> str:
    total = record.rows_total or 0
    share = record.rows_failed / total if total else 1.0
    return (
        f"{record.rows_failed} of {total} rows failed validation ({share:.2%}), above "
        f"max_error_rate {spec.max_error_rate:.2%}; reasons in {spec.output.rstrip('/')}/_errors/"
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
