"""Input files: read their schema and plan their chunks.

    file_schema    the Arrow schema of a file (Parquet metadata, or a first block of text)
    plan_file      a file -> Chunk list: row groups for Parquet, byte ranges for text

Chunks are deterministic: the same file and ``chunk_rows`` always give the same chunks.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from inferd.jobs._textscan import scan_text
from inferd.jobs.files import InputFile, open_fs, read_blocks, read_range
from inferd.jobs.records import Chunk

_SCHEMA_BYTES = 1 << 20


def open_parquet(uri: str) -> pq.ParquetFile:
    """A Parquet file read page by page, so memory stays bounded by the pages in flight."""
    fs, path = open_fs(uri)
    return pq.ParquetFile(fs.open(path, "rb"), buffer_size=1 << 20, pre_buffer=False)


def file_schema(file: InputFile) -> pa.Schema:
    """The columns of a file; for text, types inferred from its first MiB."""
    if file.format == "parquet":
        return open_parquet(file.uri).schema_arrow
    head = read_range(file.uri, 0, min(file.size, _SCHEMA_BYTES))
    if file.size > _SCHEMA_BYTES:
        head = head[: head.rfind(b"\n") + 1] or head
    if file.format == "csv":
        skip = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda _: "skip")
        return pacsv.read_csv(io.BytesIO(head), parse_options=skip).schema
    try:
        options = pajson.ReadOptions(block_size=max(len(head), 1) + 1)
        return pajson.read_json(io.BytesIO(head), read_options=options).schema
    except pa.ArrowInvalid:  # a bad line in the sample: infer from the lines that parse
        return _lenient_json_schema(head)


def _lenient_json_schema(head: bytes) -> pa.Schema:
    records = []
    for line in head.splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    names = list(dict.fromkeys(k for r in records for k in r))
    fields = []
    for name in names:
        try:
            kind = pa.array([r.get(name) for r in records]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            kind = pa.string()  # mixed types: rows whose value is not text are set aside
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def plan_file(file: InputFile, index: int, first_seq: int, chunk_rows: int) -> list[Chunk]:
    """Chunks of at most ``chunk_rows`` rows covering the file, numbered from ``first_seq``."""
    if file.format == "parquet":
        pieces = _parquet_pieces(open_parquet(file.uri).metadata, chunk_rows)
    else:
        text, _ = scan_text(
            read_blocks(file.uri),
            chunk_rows,
            quoted=file.format == "csv",
            header=file.format == "csv",
        )
        pieces, row = [], 0
        for start, end, rows in text.chunks:
            pieces.append((row, rows, start, end))
            row += rows
    return [
        Chunk(first_seq + i, index, row, rows, loc_start, loc_end)
        for i, (row, rows, loc_start, loc_end) in enumerate(pieces)
    ]


def header_end(file: InputFile) -> int:
    """Bytes of a CSV file's header line (0 for other formats)."""
    if file.format != "csv":
        return 0
    text, _ = scan_text(
        read_blocks(file.uri, 0, min(file.size, _SCHEMA_BYTES)), 1, quoted=True, header=True
    )
    return text.header_end


def _parquet_pieces(metadata: Any, chunk_rows: int) -> list[tuple[int, int, int, int]]:
    """(first row, rows, first row group, end row group) per chunk.

    Small row groups are merged up to ``chunk_rows``; a large one is cut in equal pieces that
    share its row-group range (a worker reads those pieces in one sequential pass).
    """
    pieces: list[tuple[int, int, int, int]] = []
    row, open_start, open_rows, open_group = 0, 0, 0, 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if open_rows and open_rows + rows > chunk_rows:
            pieces.append((open_start, open_rows, open_group, group))
            open_rows = 0
        if rows > chunk_rows:
            count = -(-rows // chunk_rows)
            for k in range(count):
                lo, hi = rows * k // count, rows * (k + 1) // count
                pieces.append((row + lo, hi - lo, group, group + 1))
        elif rows:
            if not open_rows:
                open_start, open_group = row, group
            open_rows += rows
        row += rows
    if open_rows:
        pieces.append((open_start, open_rows, open_group, metadata.num_row_groups))
    return pieces
