"""Turning logged requests into Parquet files under a partitioned fsspec folder.

    tables(entries)   Entry list -> {(model, version, hour): [(pa.Table, requests), ...]}:
                      one row per request row
    ParquetSink       writes one table as ``<root>/model=m/version=v/hour=H/part-...parquet``

A request's tensors are cut along their first dimension when every input and output shares
it (the batch dimension), so a row of the log is one row of the model, the shape that batch
jobs (``inferd jobs``) and drift checks read: a tensor of shape [n] becomes a scalar column,
[n, d1, d2] a fixed-size list column of d1*d2 values. A request whose tensors disagree on
the first dimension is logged as one row holding each whole tensor, flattened, as a list.

Columns: ``request_id``, ``timestamp`` (UTC, microseconds), ``row`` (position within the
request), ``latency_ms``, ``status``, ``experiment`` and ``variant`` (the experiment or
rollout that routed the request, else null), ``input.<name>``, ``output.<name>``. Model,
version and hour are the partition keys (Hive style, values percent-encoded) and are not
repeated inside the files, so readers that discover partitions see each key once.

Files are written under a hidden name and renamed when complete, so a reader never sees a
partial file (readers skip names starting with ``.`` or ``_``). File names carry the process
id, a random token for this process's run (a restarted container may reuse its pid) and a
sequence number, so ``--workers N`` and replicas never write the same name.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from inferd.monitoring.prediction_log import Entry

INPUT_PREFIX = "input."
OUTPUT_PREFIX = "output."
HOUR_FORMAT = "%Y-%m-%dT%H"
Partition = tuple[str, str, str]  # model, version, hour


def partition_path(model: str, version: str, hour: str | None = None) -> str:
    """The folder of a model version (and hour) relative to the log's root."""
    path = f"model={quote(model, safe='')}/version={quote(version, safe='')}"
    return path if hour is None else f"{path}/hour={hour}"


def hour_of(at: float) -> str:
    """The hour partition value of a ``time.time()`` instant, in UTC."""
    return datetime.fromtimestamp(at, UTC).strftime(HOUR_FORMAT)


def _tensors(entry: Entry) -> dict[str, np.ndarray]:
    tensors = {INPUT_PREFIX + n: a for n, a in entry.request.inputs.items()}
    tensors.update({OUTPUT_PREFIX + n: a for n, a in entry.response.outputs.items()})
    return tensors


def _layout(tensors: dict[str, np.ndarray]) -> tuple[int | None, tuple[Any, ...]]:
    """The rows of a request (the first dimension every tensor shares, else None) and what
    must agree for requests to share one table (column names, types, row shapes)."""
    shapes = [a.shape for a in tensors.values()]
    firsts = {shape[0] if shape else -1 for shape in shapes}
    rows = firsts.pop() if len(firsts) == 1 and -1 not in firsts else None
    if rows is None:
        return None, tuple((n, a.dtype, None) for n, a in tensors.items())
    return rows, tuple((n, a.dtype, a.shape[1:]) for n, a in tensors.items())


def _values(flat: np.ndarray) -> pa.Array:
    if flat.dtype == np.float16:  # Parquet's float16 is too new for many readers
        flat = flat.astype(np.float32)
    if flat.dtype.kind in "OSU":
        return pa.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                         for v in flat.tolist()])  # fmt: skip
    return pa.array(flat)


def _column(arrays: list[np.ndarray], batched: bool) -> pa.Array:
    """One tensor of every request in a group, as one column (a row per request row)."""
    if batched:
        first = arrays[0]
        if first.ndim == 1:
            return _values(np.concatenate(arrays))
        width = int(np.prod(first.shape[1:]))
        flat = np.concatenate([a.reshape(-1) for a in arrays])
        return pa.FixedSizeListArray.from_arrays(_values(flat), width)
    sizes = np.array([a.size for a in arrays], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    flat = np.concatenate([a.reshape(-1) for a in arrays])
    return pa.ListArray.from_arrays(offsets, _values(flat))


def _group_table(group: list[tuple[Entry, dict[str, np.ndarray], int | None]]) -> pa.Table:
    batched = group[0][2] is not None
    counts = np.array([rows if rows is not None else 1 for _, _, rows in group], dtype=np.int64)
    index = pa.array(np.repeat(np.arange(len(group)), counts))
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    params = [e.response.parameters for e, _, _ in group]
    per_request = {
        "request_id": pa.array([e.response.id or e.request.id for e, _, _ in group], pa.string()),
        "timestamp": pa.array([int(e.at * 1e6) for e, _, _ in group], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
        "latency_ms": pa.array([e.response.latency_ms for e, _, _ in group], pa.float64()),
        "status": pa.array([200] * len(group), pa.int16()),  # only answered requests, today
        "experiment": pa.array(
            [p.get("experiment_id", p.get("rollout_id")) for p in params], pa.string()
        ),
        "variant": pa.array(
            [p.get("experiment_variant", p.get("rollout_arm")) for p in params], pa.string()
        ),
    }
    columns: dict[str, pa.Array] = {n: a.take(index) for n, a in per_request.items()}
    columns["row"] = pa.array(np.arange(int(counts.sum())) - starts, pa.int32())
    for name in group[0][1]:
        columns[name] = _column([t[name] for _, t, _ in group], batched)
    order = ["request_id", "timestamp", "row", "latency_ms", "status", "experiment", "variant"]
    return pa.table({n: columns[n] for n in [*order, *group[0][1]]})


def tables(entries: list[Entry]) -> dict[Partition, list[tuple[pa.Table, int]]]:
    """The entries as (table, requests in it) by partition; requests of different layouts
    go to separate tables.

    Raises:
        Exception: a tensor Arrow cannot hold; the caller drops the batch and counts it.
    """
    groups: dict[tuple[str, str, int, tuple[Any, ...]], list[Any]] = {}
    for entry in entries:
        tensors = _tensors(entry)
        rows, layout = _layout(tensors)
        response = entry.response
        key = (response.model_name, response.model_version, int(entry.at // 3600), layout)
        groups.setdefault(key, []).append((entry, tensors, rows))
    out: dict[Partition, list[tuple[pa.Table, int]]] = {}
    for (model, version, hour, _), group in groups.items():
        partition = (model, version, hour_of(hour * 3600.0))
        out.setdefault(partition, []).append((_group_table(group), len(group)))
    return out


class ParquetSink:
    """Writes tables as Parquet files under ``uri`` (a local path or any fsspec URI).

    Args:
        uri: the log's root folder.
        filesystem: an fsspec filesystem to use instead of the one ``uri`` names (tests).
    """

    def __init__(self, uri: str, filesystem: Any = None) -> None:
        if filesystem is None:
            filesystem, root = fsspec.core.url_to_fs(uri)
        else:
            root = filesystem._strip_protocol(uri)
        self.fs = filesystem
        self.root = str(root).rstrip("/")
        self._prefix = f"part-{os.getpid()}-{secrets.token_hex(3)}"
        self._seq = itertools.count()

    def write(self, partition: Partition, table: pa.Table) -> str:
        """Write one file into its partition; return its path."""
        folder = f"{self.root}/{partition_path(*partition)}"
        name = f"{self._prefix}-{next(self._seq):06d}.parquet"
        hidden = f"{folder}/.{name}.tmp"
        self.fs.makedirs(folder, exist_ok=True)
        try:
            with self.fs.open(hidden, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
            self.fs.mv(hidden, f"{folder}/{name}")
        except BaseException:
            # A full disk leaves a partial file behind: free what it took; the write's own
            # error is the one to report.
            with contextlib.suppress(Exception):
                self.fs.rm(hidden)
            raise
        return f"{folder}/{name}"
