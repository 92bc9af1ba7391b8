"""Reading the prediction log back: a model version's rows over a time window.

    read_window(uri, model, version, since, until) -> pa.Table   (``.to_pandas()`` for a frame)
    window_files(uri, model, version, since, until) -> [path]    the files that may hold rows
    tensors(table, prefix)  -> {name: array}   a window's inputs or outputs, batch first

Only the hour folders that overlap the window are listed, so a window costs the files of its
hours, not the whole log. Drift checks use a window as live data or as a reference; batch jobs
can take the same folders (``inferd jobs run ... --input <uri>/model=m/version=3``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from inferd.monitoring.prediction_log_writer import HOUR_FORMAT, INPUT_PREFIX, partition_path

_HOUR = timedelta(hours=1)


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _overlaps(hour: str, since: datetime | None, until: datetime | None) -> bool:
    try:
        start = datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False  # not a folder the log wrote
    return (since is None or start + _HOUR > since) and (until is None or start < until)


def _visible(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def window_files(
    uri: str, model: str, version: str | int, since: datetime | None = None,
    until: datetime | None = None, filesystem: Any = None,
) -> list[str]:  # fmt: skip
    """The log files of ``model``/``version`` whose hour overlaps [since, until), sorted.

    Naive datetimes are taken as UTC; None leaves that end open.
    """
    fs, root = _open(uri, filesystem)
    since, until = _utc(since), _utc(until)
    base = f"{root}/{partition_path(model, str(version))}"
    if not fs.isdir(base):
        return []
    files: list[str] = []
    for folder in sorted(fs.ls(base, detail=False)):
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith("hour=") and _overlaps(name[len("hour=") :], since, until):
            files.extend(sorted(p for p in fs.ls(folder, detail=False) if _visible(p)))
    return files


def read_window(
    uri: str, model: str, version: str | int, since: datetime | None = None,
    until: datetime | None = None, columns: list[str] | None = None, filesystem: Any = None,
) -> pa.Table:  # fmt: skip
    """The logged rows of ``model``/``version`` with ``since <= timestamp < until``.

    Args:
        uri: the log's root (``--prediction-log-uri``).
        model: the model name.
        version: the version number.
        since: the window's start (inclusive); naive means UTC; None: from the first row.
        until: the window's end (exclusive); None: to the last row.
        columns: the columns to read (``timestamp`` is always read); None reads all.
        filesystem: an fsspec filesystem to use instead of the one ``uri`` names.

    Returns:
        An Arrow table ordered by timestamp, with ``model`` and ``version`` columns added;
        empty (no columns) when nothing was logged in the window. Files whose layout differs
        (for example an input sent as integers once) are merged with types promoted.
    """
    fs, _ = _open(uri, filesystem)
    since, until = _utc(since), _utc(until)
    wanted = None if columns is None else list(dict.fromkeys(["timestamp", *columns]))
    parts = []
    for path in window_files(uri, model, version, since, until, filesystem=fs):
        with fs.open(path, "rb") as handle:
            parts.append(pq.read_table(handle, columns=wanted))
    if not parts:
        return pa.table({})
    table = pa.concat_tables(parts, promote_options="permissive")
    stamps = table.column("timestamp")
    keep = pc.and_(
        pc.greater_equal(stamps, pa.scalar(since, stamps.type)) if since else pa.scalar(True),
        pc.less(stamps, pa.scalar(until, stamps.type)) if until else pa.scalar(True),
    )
    table = table.filter(keep) if since or until else table
    table = table.sort_by([("timestamp", "ascending")])
    table = table.add_column(0, "version", pa.array([str(version)] * table.num_rows, pa.string()))
    return table.add_column(0, "model", pa.array([model] * table.num_rows, pa.string()))


def tensors(table: pa.Table, prefix: str = INPUT_PREFIX) -> dict[str, np.ndarray]:
    """A window's inputs (or outputs, with ``prefix="output."``) as batch-first arrays, the
    shape the model saw, e.g. for :func:`inferd.monitoring.drift_profile.columns_of`.

    A fixed-size list column becomes [rows, width] (a model's [n, d1, d2] comes back as
    [n, d1*d2]), a scalar column [rows]; a variable-length list column (requests logged
    whole) becomes an object array of arrays, one per row.
    """
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        if not name.startswith(prefix):
            continue
        column = table.column(name).combine_chunks()
        kind = column.type
        if pa.types.is_fixed_size_list(kind):
            values = column.flatten().to_numpy(zero_copy_only=False)
            out[name[len(prefix) :]] = values.reshape(len(column), kind.list_size)
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            rows = [np.asarray(v) for v in column.to_pylist()]
            holder = np.empty(len(rows), dtype=object)
            holder[:] = rows
            out[name[len(prefix) :]] = holder
        else:
            out[name[len(prefix) :]] = column.to_numpy(zero_copy_only=False)
    return out


def _open(uri: str, filesystem: Any) -> tuple[Any, str]:
    if filesystem is not None:
        return filesystem, str(filesystem._strip_protocol(uri)).rstrip("/")
    fs, root = fsspec.core.url_to_fs(uri)
    return fs, str(root).rstrip("/")
