"""Split CSV and JSON Lines files into chunks of whole records by byte offset, in one pass.

A record ends at a newline outside quotes. For CSV (RFC 4180, quotes doubled inside quoted
fields) a newline is outside quotes exactly when an even number of ``"`` come before it, so
a running parity finds record ends with numpy, block by block, without parsing. JSON Lines
cannot hold a raw newline inside a value, so every newline ends a record. Blank lines are
not records. Memory stays at one block whatever the file size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

_NL, _CR, _QUOTE = 10, 13, 34


@dataclass(slots=True)
class TextPlan:
    """Where the header ends (0 without one) and ``(start, end, records)`` per chunk."""

    header_end: int = 0
    chunks: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Scan:
    chunk_rows: int
    quoted: bool
    want_header: bool
    plan: TextPlan = field(default_factory=TextPlan)
    offset: int = 0  # bytes scanned so far
    parity: int = 0  # quotes seen so far, mod 2
    tail: bytes = b"\n\n"  # last two bytes scanned: a file starts as if after a blank line
    chunk_start: int = 0
    count: int = 0  # records in the open chunk
    last_end: int = 0  # offset just after the last record end

    def feed(self, block: bytes) -> None:
        data = np.frombuffer(self.tail + block, dtype=np.uint8)
        newlines = np.flatnonzero(data == _NL)
        newlines = newlines[newlines >= 2]  # those in the carried tail were counted already
        if self.quoted:
            quotes = np.cumsum(data == _QUOTE)
            before = quotes[newlines] - quotes[1]  # quotes of this block up to each newline
            newlines = newlines[(before + self.parity) % 2 == 0]
            self.parity = (self.parity + int(quotes[-1] - quotes[1])) % 2
        prev = data[newlines - 1]
        blank = (prev == _NL) | ((prev == _CR) & (data[newlines - 2] == _NL))
        ends = newlines[~blank] - 2 + self.offset + 1  # absolute offset after each record
        self.offset += len(block)
        self.tail = (self.tail + block)[-2:]
        self._take(ends)

    def _take(self, ends: np.ndarray) -> None:
        if self.want_header and len(ends):
            self.plan.header_end = self.chunk_start = self.last_end = int(ends[0])
            self.want_header = False
            ends = ends[1:]
        if not len(ends):
            return
        for end in ends[self.chunk_rows - self.count - 1 :: self.chunk_rows]:
            self.plan.chunks.append((self.chunk_start, int(end), self.chunk_rows))
            self.chunk_start = int(end)
        self.count = (self.count + len(ends)) % self.chunk_rows
        self.last_end = int(ends[-1])

    def finish(self, rest: bytes) -> TextPlan:
        """``rest``: the bytes after the last record end (a last record without newline)."""
        if rest.strip():
            if self.want_header:
                self.plan.header_end = self.chunk_start = self.offset
            else:
                self.count += 1
        if self.count:
            self.plan.chunks.append((self.chunk_start, self.offset, self.count))
        return self.plan


def scan_text(
    blocks: Iterable[bytes], chunk_rows: int, *, quoted: bool, header: bool
) -> tuple[TextPlan, int]:
    """Plan chunks of ``chunk_rows`` records over a file read as ``blocks``.

    Args:
        blocks: the file's bytes, in order, in blocks of any size.
        chunk_rows: records per chunk (the last one may hold fewer).
        quoted: CSV quoting rules (newlines inside quotes do not end a record).
        header: the first record is a header, not data.

    Returns:
        The plan and the offset after the last record end.
    """
    scan = _Scan(chunk_rows, quoted, header)
    pending = bytearray()
    for block in blocks:
        scan.feed(block)
        pending += block
        # Keep only the bytes after the last record end, to inspect at the end of the file.
        del pending[: max(0, len(pending) - (scan.offset - scan.last_end))]
    return scan.finish(bytes(pending)), scan.last_end
