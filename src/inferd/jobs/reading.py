"""Read one planned chunk as an Arrow table with the job's fixed column types.

Parquet chunks read whole row groups, or stream a piece of a large row group (continuing
where the previous piece ended, so a run of pieces is one sequential pass). Text chunks read
their byte range. Rows that do not parse are returned apart with the reason; the job's other
rows go on.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from inferd.errors import InvalidInput
from inferd.jobs import _lenient
from inferd.jobs.files import InputFile, read_range
from inferd.jobs.records import Chunk
from inferd.jobs.sources import open_parquet

_PIECE_BATCH = 65_536


@dataclass(slots=True)
class RawChunk:
    """A chunk's parsed rows, their row numbers in the file, and the rows that did not parse."""

    chunk: Chunk
    table: pa.Table
    rows: np.ndarray
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Piece:
    uri: str
    group: int
    position: int  # file row of the next row the iterator yields
    batches: Iterator[pa.RecordBatch]
    pending: pa.RecordBatch | None = None


class ChunkReader:
    """Reads chunks of the planned input files; one per worker (it caches open files).

    Args:
        files: the job's input files, indexed by ``Chunk.file_index``.
        schema: the columns to read and their types.
        header_ends: per file, the byte length of a CSV header (0 otherwise).
    """

    def __init__(self, files: list[InputFile], schema: pa.Schema, header_ends: list[int]) -> None:
        self.files = files
        self.schema = schema
        self.names = schema.names
        self.header_ends = header_ends
        self._parquet: tuple[str, Any, list[int]] | None = None
        self._piece: _Piece | None = None
        self._headers: dict[int, bytes] = {}

    def read(self, chunk: Chunk) -> RawChunk:
        file = self.files[chunk.file_index]
        if file.format == "parquet":
            table = self._read_parquet(file, chunk)
            rows = np.arange(chunk.start_row, chunk.start_row + table.num_rows, dtype=np.int64)
            return RawChunk(chunk, table, rows)
        data = read_range(file.uri, chunk.loc_start or 0, chunk.loc_end or 0)
        if file.format == "csv":
            return self._read_csv(chunk, data)
        return self._read_jsonl(chunk, data)

    # -- Parquet -----------------------------------------------------------------------------

    def _open(self, uri: str) -> tuple[Any, list[int]]:
        if self._parquet is None or self._parquet[0] != uri:
            handle = open_parquet(uri)
            meta = handle.metadata
            starts = np.cumsum(
                [0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            )
            self._parquet = (uri, handle, [int(s) for s in starts])
            self._piece = None
        return self._parquet[1], self._parquet[2]

    def _read_parquet(self, file: InputFile, chunk: Chunk) -> pa.Table:
        handle, starts = self._open(file.uri)
        first, end = chunk.loc_start or 0, chunk.loc_end or 0
        whole = chunk.start_row == starts[first] and chunk.start_row + chunk.num_rows == starts[end]
        if whole:
            table = handle.read_row_groups(list(range(first, end)), columns=self.names)
        else:
            table = self._read_piece(file.uri, handle, first, starts[first], chunk)
        return self._conform(file, table)

    def _read_piece(
        self, uri: str, handle: Any, group: int, group_start: int, chunk: Chunk
    ) -> pa.Table:
        piece = self._piece
        if (
            piece is None
            or piece.group != group
            or piece.uri != uri
            or (piece.position > chunk.start_row)
        ):
            batches = handle.iter_batches(_PIECE_BATCH, row_groups=[group], columns=self.names)
            piece = self._piece = _Piece(uri, group, group_start, batches)
        taken: list[pa.RecordBatch] = []
        need, end = chunk.num_rows, chunk.start_row + chunk.num_rows
        while need > 0:
            batch = piece.pending if piece.pending is not None else next(piece.batches)
            piece.pending = None
            lo = max(chunk.start_row - piece.position, 0)
            hi = min(end - piece.position, batch.num_rows)
            if hi < batch.num_rows:
                piece.pending = batch.slice(hi)
            if hi > lo:
                taken.append(batch.slice(lo, hi - lo))
                need -= hi - lo
            piece.position += hi
        return pa.Table.from_batches(taken, schema=taken[0].schema if taken else None)

    def _conform(self, file: InputFile, table: pa.Table) -> pa.Table:
        if table.schema.equals(self.schema):
            return table
        try:
            return table.select(self.names).cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as err:
            raise InvalidInput(
                f"input {file.uri}", f"columns {self.schema}", f"{table.schema} ({err})"
            ) from err

    # -- text --------------------------------------------------------------------------------

    def _header(self, chunk: Chunk) -> bytes:
        index = chunk.file_index
        if index not in self._headers:
            self._headers[index] = read_range(self.files[index].uri, 0, self.header_ends[index])
        return self._headers[index]

    def _read_csv(self, chunk: Chunk, data: bytes) -> RawChunk:
        skipped: list[tuple[int, str]] = []

        def invalid(row: Any) -> str:
            position = (row.number or 2) - 2  # line 1 is the header
            reason = f"expected {row.expected_columns} columns, got {row.actual_columns}"
            skipped.append((position, reason))
            return "skip"

        def parse(types: dict[str, pa.DataType]) -> pa.Table:
            skipped.clear()
            return pacsv.read_csv(
                io.BytesIO(self._header(chunk) + data),
                read_options=pacsv.ReadOptions(use_threads=False, block_size=len(data) + 4096),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=self.names, column_types=types
                ),
            )

        try:
            table = parse({f.name: f.type for f in self.schema})
            errors: dict[int, str] = {}
        except pa.ArrowInvalid:
            text = parse({name: pa.string() for name in self.names})
            errors = {}
            columns = _lenient.cast_columns(
                {n: text.column(n).combine_chunks() for n in self.names}, self.schema, errors
            )
            keep = [i for i in range(text.num_rows) if i not in errors]
            table = _lenient.build_table(columns, self.schema, keep)
        return self._assemble(chunk, table, skipped, errors)

    def _assemble(
        self,
        chunk: Chunk,
        table: pa.Table,
        skipped: list[tuple[int, str]],
        errors: dict[int, str],
    ) -> RawChunk:
        # Positions of parsed rows among all records: skipped records leave gaps.
        gaps = sorted(p for p, _ in skipped)
        parsed = np.delete(np.arange(table.num_rows + len(errors) + len(gaps)), gaps)
        kept = np.delete(parsed, sorted(errors)) if errors else parsed
        failed = [(chunk.start_row + p, r) for p, r in skipped]
        failed += [(chunk.start_row + int(parsed[p]), r) for p, r in errors.items()]
        return RawChunk(chunk, table, chunk.start_row + kept.astype(np.int64), sorted(failed))

    def _read_jsonl(self, chunk: Chunk, data: bytes) -> RawChunk:
        try:
            table = pajson.read_json(
                io.BytesIO(data),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=pajson.ParseOptions(
                    explicit_schema=self.schema, unexpected_field_behavior="ignore"
                ),
            )
            return RawChunk(chunk, table.select(self.names), self._numbers(chunk, table.num_rows))
        except pa.ArrowInvalid:
            values, count, errors = _lenient.json_lines(data, self.names)
        columns = _lenient.cast_columns(values, self.schema, errors)
        keep = [i for i in range(count) if i not in errors]
        table = _lenient.build_table(columns, self.schema, keep)
        failed = sorted((chunk.start_row + p, r) for p, r in errors.items())
        return RawChunk(chunk, table, chunk.start_row + np.array(keep, dtype=np.int64), failed)

    @staticmethod
    def _numbers(chunk: Chunk, count: int) -> np.ndarray:
        return np.arange(chunk.start_row, chunk.start_row + count, dtype=np.int64)
