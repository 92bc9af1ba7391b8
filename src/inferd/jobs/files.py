"""Input and output locations: local paths, folders, globs and fsspec URIs (s3://, gs://, ...).

Nothing here needs pyarrow, so a server without the ``jobs`` extra can still accept jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import fsspec

from inferd.errors import InvalidInput

BLOCK_BYTES = 8 << 20
_EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".snappy")


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file: its URI (a plain path for local files), format and size."""

    uri: str
    format: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_fs(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem and the path within it for a URI or a local path."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def expand_inputs(patterns: list[str], input_format: str = "auto") -> list[InputFile]:
    """Every file the patterns name, in a stable order, without duplicates.

    A folder stands for the files under it (hidden and ``_``-prefixed names left out).

    Raises:
        InvalidInput: a pattern matches nothing, or a file's format is unknown.
    """
    found: dict[str, InputFile] = {}
    for pattern in patterns:
        fs, path = open_fs(pattern)
        matches = sorted(fs.glob(path)) if fsspec.core.has_magic(path) else [path]
        files = [f for m in matches for f in _files_under(fs, m)]
        if not files:
            raise InvalidInput("inputs", "files that exist", f"nothing at {pattern!r}")
        for name in files:
            uri = name if _is_local(fs) else fs.unstrip_protocol(name)
            if uri not in found:
                found[uri] = InputFile(uri, _format(uri, input_format), int(fs.size(name)))
    return list(found.values())


def _files_under(fs: Any, path: str) -> list[str]:
    if not fs.exists(path):
        return []
    if not fs.isdir(path):
        return [path]
    names = sorted(fs.find(path))
    return [n for n in names if not n.rsplit("/", 1)[-1].startswith((".", "_"))]


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _format(uri: str, requested: str) -> str:
    lower = uri.lower()
    if lower.endswith(_COMPRESSED):
        raise InvalidInput(
            f"input {uri}",
            "an uncompressed file (chunks are byte ranges)",
            "a compressed file; decompress it or convert it to Parquet",
        )
    if requested != "auto":
        return requested
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    raise InvalidInput(
        f"input {uri}", f"an extension among {sorted(_EXTENSIONS)}", "none; pass --input-format"
    )


def read_blocks(uri: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of a file, in blocks."""
    fs, path = open_fs(uri)
    with fs.open(path, "rb") as handle:
        handle.seek(start)
        left = end - start if end is not None else None
        while left is None or left > 0:
            block = handle.read(BLOCK_BYTES if left is None else min(BLOCK_BYTES, left))
            if not block:
                return
            if left is not None:
                left -= len(block)
            yield block


def read_range(uri: str, start: int, end: int) -> bytes:
    return b"".join(read_blocks(uri, start, end))


def list_folder(uri: str) -> list[str]:
    """Names in a folder; none when it does not exist."""
    fs, path = open_fs(uri)
    if not fs.exists(path):
        return []
    return [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
