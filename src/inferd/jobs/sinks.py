"""Job outputs: one part file per chunk, an errors file per chunk with bad rows, a manifest.

    <output>/part-000000.parquet      predictions (+ passthrough columns) of chunk 0
    <output>/_errors/part-000000.jsonl rows of chunk 0 set aside, with the reason
    <output>/_manifest.json           written last, when the job succeeds

Every file is written to a temporary name beside its final one and renamed into place, so a
reader (or a resumed job) sees a whole part or none. Re-running a chunk writes the same name.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from collections.abc import Callable
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from inferd.jobs.files import open_fs

MANIFEST = "_manifest.json"
ERRORS_DIR = "_errors"
_SUFFIX = {"parquet": ".parquet", "jsonl": ".jsonl"}


class PartWriter:
    """Writes a job's files under ``output`` (a local path or an fsspec URI).

    Args:
        output: the output folder.
        output_format: ``parquet`` or ``jsonl``.
    """

    def __init__(self, output: str, output_format: str) -> None:
        self.fs, self.root = open_fs(output)
        self.format = output_format
        self._local = "file" in _protocols(self.fs)

    def prepare(self) -> None:
        self.fs.makedirs(posixpath.join(self.root, ERRORS_DIR), exist_ok=True)

    def part_name(self, stem: str) -> str:
        return stem + _SUFFIX[self.format]

    def write(self, stem: str, table: pa.Table, errors: list[dict[str, Any]]) -> str:
        """Write a chunk's errors file (or remove a stale one), then its part; return its name."""
        errors_path = posixpath.join(self.root, ERRORS_DIR, stem + ".jsonl")
        if errors:
            self._atomic(errors_path, lambda f: _write_jsonl(f, errors))
        elif self.fs.exists(errors_path):
            self.fs.rm(errors_path)
        name = self.part_name(stem)
        if self.format == "parquet":
            self._atomic(posixpath.join(self.root, name), lambda f: pq.write_table(table, f))
        else:
            self._atomic(posixpath.join(self.root, name), lambda f: _write_jsonl(f, _rows(table)))
        return name

    def write_manifest(self, manifest: dict[str, Any]) -> str:
        path = posixpath.join(self.root, MANIFEST)
        data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
        self._atomic(path, lambda f: f.write(data))
        return path

    def remove_temporaries(self) -> None:
        """Delete temporary files that a killed run left behind."""
        for folder in (self.root, posixpath.join(self.root, ERRORS_DIR)):
            if self.fs.exists(folder):
                for path in self.fs.ls(folder, detail=False):
                    if posixpath.basename(path).endswith(".tmp"):
                        self.fs.rm(path)

    def _atomic(self, path: str, write: Callable[[IO[bytes]], Any]) -> None:
        folder, name = posixpath.split(path)
        temp = posixpath.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            with self.fs.open(temp, "wb") as handle:
                write(handle)
                if self._local:
                    handle.flush()
                    os.fsync(handle.fileno())
            if self._local:
                os.replace(temp, path)  # atomic on POSIX, replacing a stale part
            else:
                self.fs.mv(temp, path)  # object stores publish a whole object at once
        except BaseException:
            if self.fs.exists(temp):
                self.fs.rm(temp)
            raise


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def _write_jsonl(handle: IO[bytes], rows: list[dict[str, Any]]) -> None:
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    handle.write(b"".join(orjson.dumps(row, option=option, default=_default) for row in rows))


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)
