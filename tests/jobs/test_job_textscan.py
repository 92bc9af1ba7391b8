"""Byte-range chunking of CSV and JSON Lines, checked against Python's csv module."""

from __future__ import annotations

import csv
import io

import pytest

from inferd.jobs._textscan import scan_text


def blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def records(data: bytes, header: bool) -> list[list[str]]:
    rows = [r for r in csv.reader(io.StringIO(data.decode(), newline="")) if r]
    return rows[1:] if header else rows


CSV = b'id,text\n1,"one\nline two"\n2,plain\n\n3,"quote "" and, comma"\r\n4,"a\n\nb"\n5,last'


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 10])
def test_csv_chunks_hold_whole_records(block: int, chunk_rows: int) -> None:
    plan, _ = scan_text(blocks(CSV, block), chunk_rows, quoted=True, header=True)
    assert plan.header_end == len(b"id,text\n")
    expected = records(CSV, header=True)
    got: list[list[str]] = []
    for start, end, count in plan.chunks:
        piece = records(CSV[start:end], header=False)
        assert len(piece) == count  # planned counts match what a parser finds
        assert count <= chunk_rows
        got.extend(piece)
    assert got == expected
    assert plan.chunks[0][0] == plan.header_end
    assert plan.chunks[-1][1] == len(CSV)


def test_jsonl_counts_lines_and_skips_blank_ones() -> None:
    data = b'{"a": 1}\n\n{"a": "x\\ny"}\n{"a": 3}\n'
    plan, end = scan_text(blocks(data, 5), 2, quoted=False, header=False)
    assert plan.header_end == 0
    assert [c[2] for c in plan.chunks] == [2, 1]
    assert plan.chunks[0][0] == 0
    assert plan.chunks[-1][1] == len(data) == end


def test_empty_and_header_only_files() -> None:
    assert scan_text([], 10, quoted=True, header=True)[0].chunks == []
    plan, _ = scan_text([b"a,b\n"], 10, quoted=True, header=True)
    assert (plan.header_end, plan.chunks) == (4, [])
    plan, _ = scan_text([b"a,b"], 10, quoted=True, header=True)
    assert (plan.header_end, plan.chunks) == (3, [])
