"""Human-readable job progress: a one-line bar (rows, rows/s, ETA) and summaries.

Works on the JSON shape of a job (``JobRecord.to_dict()``, or ``GET /v1/jobs/{id}``), so the
CLI shows jobs the same way whether it talks to a server or to the registry.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

_BAR = 24


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(job: dict[str, Any]) -> str:
    """``[#####.....]  45.2%  452,000/1,000,000 rows  120,345 rows/s  ETA 0:00:04``."""
    total, processed = job.get("rows_total"), job["rows_done"] + job["rows_failed"]
    share = processed / total if total else 0.0
    filled = int(_BAR * min(share, 1.0))
    bar = "#" * filled + "." * (_BAR - filled)
    rate = job.get("rows_per_s")
    text = f"[{bar}] {share:6.1%}  {processed:,}/{total:,} rows" if total else (
        f"[{bar}]   planning  {processed:,} rows")  # fmt: skip
    text += f"  {rate:,.0f} rows/s" if rate else "  - rows/s"
    text += f"  ETA {_duration(job.get('eta_s'))}"
    if job["rows_failed"]:
        text += f"  failed {job['rows_failed']:,}"
    return text


def job_line(job: dict[str, Any]) -> str:
    """One line of ``inferd jobs list``."""
    total = job.get("rows_total")
    rows = f"{job['rows_done'] + job['rows_failed']:,}/{total:,}" if total else "-"
    return (
        f"{job['id']:<26} {job['state']:<10} {job['model']}:{job['version']:<4} "
        f"rows {rows:<22} failed {job['rows_failed']:<8,} {job['output_uri']}"
    )


def job_details(job: dict[str, Any]) -> str:
    """The multi-line view of ``inferd jobs show``."""
    lines = [
        f"job       {job['id']}",
        f"state     {job['state']}" + (f": {job['error']}" if job.get("error") else ""),
        f"model     {job['model']} version {job['version']}",
        f"progress  {progress_line(job)}",
        f"output    {job['output_uri']}",
        f"created   {job['created_at']} by {job['created_by']}",
    ]
    if job.get("finished_at"):
        lines.append(f"finished  {job['finished_at']}")
    return "\n".join(lines)


class Progress:
    """Redraws the progress line on a terminal; prints a line every few seconds otherwise."""

    def __init__(self, stream: TextIO, quiet: bool = False, every_s: float = 5.0) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.every_s = every_s
        self._last = 0.0

    def show(self, job: dict[str, Any]) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + progress_line(job) + "\x1b[K")
        elif now - self._last >= self.every_s:
            self.stream.write(progress_line(job) + "\n")
        else:
            return
        self._last = now
        self.stream.flush()

    def done(self, job: dict[str, Any]) -> None:
        if not self.quiet:
            self.stream.write(("\r" if self.tty else "") + progress_line(job) + "\n")
            self.stream.flush()
