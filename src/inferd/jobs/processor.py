"""Process one chunk: read it, infer in large batches, write its part file.

A ``ChunkProcessor`` is built once per worker (process, thread pipeline or Ray actor); it
loads the model version once with the same runtime classes online serving uses, then
processes chunks in three steps that a pipeline can overlap: ``read`` (I/O and conversion to
tensors), ``infer`` (compute), ``write`` (I/O).

When the model raises on a batch, the batch is split in halves until the rows it fails on are
found; those rows go to the errors file with the model's message, the others keep their
predictions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from inferd.config import parse_model_config
from inferd.jobs.files import InputFile
from inferd.jobs.mapping import Binding, output_table, to_inputs
from inferd.jobs.reading import ChunkReader
from inferd.jobs.records import Chunk, ChunkResult
from inferd.jobs.sinks import PartWriter
from inferd.preprocess.runtime import with_preprocessing
from inferd.registry import FsspecArtifactStore
from inferd.runtimes import Runtime, runtime_class


@dataclass(frozen=True, slots=True)
class ModelRef:
    """The pinned model version of a job and where to fetch its artifact from."""

    job_id: str
    model: str
    config: dict[str, Any]
    artifact_uri: str
    digest: str
    artifact_root: str
    cache_dir: str


@dataclass(frozen=True, slots=True)
class JobContext:
    """Everything a worker needs to process chunks of one job; picklable for processes/Ray."""

    model: ModelRef
    files: list[InputFile]
    header_ends: list[int]
    bindings: list[Binding]
    read_schema: pa.Schema
    passthrough: list[str]
    output: str
    output_format: str
    batch_size: int


@dataclass(slots=True)
class Prepared:
    """A chunk read and turned into model inputs (rows that failed are already apart)."""

    chunk: Chunk
    inputs: dict[str, np.ndarray]
    passthrough: pa.Table
    rows: np.ndarray  # row number in the file of each kept row
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Computed:
    """A chunk's output table, ready to write."""

    chunk: Chunk
    table: pa.Table
    errors: list[dict[str, Any]]


def load_runtime(ref: ModelRef) -> Runtime:
    """Fetch (digest-verified) and load the job's pinned model version."""
    config = parse_model_config(ref.config, f"job {ref.job_id} model config", ref.model)
    store = FsspecArtifactStore(ref.artifact_root, Path(ref.cache_dir))
    artifact = store.fetch(ref.artifact_uri, ref.digest)
    runtime = runtime_class(config.platform)(config, artifact, config.device)
    runtime.load()
    # Declared preprocessing: the job reads raw columns, transformed as online requests are.
    return with_preprocessing(runtime, config, f"job {ref.job_id} model config")


class ChunkProcessor:
    """Reads, infers and writes chunks of one job.

    Args:
        ctx: the job.
        runtime: a loaded runtime to use; by default one is loaded here.
        throttle: called after each batch with the seconds it took (online traffic first).
    """

    def __init__(
        self,
        ctx: JobContext,
        runtime: Runtime | None = None,
        throttle: Callable[[float], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self._runtime = runtime
        self.throttle = throttle
        self.reader = ChunkReader(ctx.files, ctx.read_schema, ctx.header_ends)
        self.writer = PartWriter(ctx.output, ctx.output_format)

    @property
    def runtime(self) -> Runtime:
        """The model, loaded on first use (a read-only or write-only stage never loads it)."""
        if self._runtime is None:
            self._runtime = load_runtime(self.ctx.model)
        return self._runtime

    def process(self, chunk: Chunk) -> ChunkResult:
        return self.write(self.infer(self.read(chunk)))

    def read(self, chunk: Chunk) -> Prepared:
        raw = self.reader.read(chunk)
        uri = self.ctx.files[chunk.file_index].uri
        errors: list[dict[str, Any]] = [
            {"file": uri, "row": row, "reason": reason} for row, reason in raw.errors
        ]
        inputs, reasons = to_inputs(raw.table, self.ctx.bindings)
        passthrough = raw.table.select(self.ctx.passthrough)
        if reasons:
            bad = sorted(reasons)
            values = passthrough.take(pa.array(bad, type=pa.int64())).to_pylist()
            for position, extra in zip(bad, values, strict=True):
                row = int(raw.rows[position])
                errors.append({"file": uri, "row": row, "reason": reasons[position], **extra})
            good = np.ones(raw.table.num_rows, dtype=bool)
            good[bad] = False
            passthrough = passthrough.filter(pa.array(good))
            raw.rows = raw.rows[good]
        errors.sort(key=lambda e: int(e["row"]))
        return Prepared(chunk, inputs, passthrough, raw.rows, errors)

    def infer(self, prepared: Prepared) -> Computed:
        rows = prepared.passthrough.num_rows
        pieces: list[dict[str, np.ndarray]] = []
        failed: dict[int, str] = {}
        for start in range(0, rows, self.ctx.batch_size):
            stop = min(start + self.ctx.batch_size, rows)
            began = time.perf_counter()
            self._infer_range(prepared.inputs, start, stop, pieces, failed)
            if self.throttle is not None:
                self.throttle(time.perf_counter() - began)
        specs = self.runtime.signature().outputs
        outputs = {
            spec.name: np.concatenate([p[spec.name] for p in pieces])
            if pieces
            else np.zeros((0,), dtype=spec.dtype)
            for spec in specs
        }
        passthrough, errors = prepared.passthrough, prepared.errors
        if failed:
            keep = np.ones(rows, dtype=bool)
            keep[list(failed)] = False
            uri = self.ctx.files[prepared.chunk.file_index].uri
            values = passthrough.take(pa.array(sorted(failed), type=pa.int64())).to_pylist()
            for position, extra in zip(sorted(failed), values, strict=True):
                errors.append(
                    {
                        "file": uri,
                        "row": int(prepared.rows[position]),
                        "reason": failed[position],
                        **extra,
                    }
                )
            passthrough = passthrough.filter(pa.array(keep))
        return Computed(prepared.chunk, output_table(outputs, specs, passthrough), errors)

    def _infer_range(
        self,
        inputs: dict[str, np.ndarray],
        start: int,
        stop: int,
        pieces: list[dict[str, np.ndarray]],
        failed: dict[int, str],
    ) -> None:
        batch = {name: array[start:stop] for name, array in inputs.items()}
        try:
            pieces.append(self.runtime.infer(batch))
            return
        except Exception as err:
            if stop - start == 1:
                message = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
                failed[start] = f"the model failed on this row: {message}"[:500]
                return
        middle = (start + stop) // 2
        self._infer_range(inputs, start, middle, pieces, failed)
        self._infer_range(inputs, middle, stop, pieces, failed)

    def write(self, computed: Computed) -> ChunkResult:
        stem = computed.chunk.part_name
        part = self.writer.write(stem, computed.table, computed.errors)
        return ChunkResult(computed.chunk.seq, computed.table.num_rows, len(computed.errors), part)

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.unload()
