"""The results table, the issue's target ratios with pass/fail, and the JSON record."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _raw import RawPoint

# The serving-core issue's targets.
ON_OFF_MIN = 2.0
SERVED_RAW_MIN = 0.15
LINEAR_RPS_MIN = 10_000.0
LINEAR_P99_MAX_MS = 2.0


@dataclass(frozen=True, slots=True)
class Cell:
    """One measured (server, model, protocol, concurrency) combination."""

    model: str
    protocol: str
    workers: int
    batching: bool
    concurrency: int
    requests: int
    rps: float
    samples_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    warmup_errors: int
    server_cpu_us_per_req: float
    wrk_cpu_us_per_req: float
    mean_batch: float | None
    check: str  # "ok", or what was wrong with the answer to one request before the run


@dataclass(frozen=True, slots=True)
class Ratio:
    """One target of the issue: measured value, target, and whether it passed (None: info)."""

    name: str
    value: float | None
    target: str
    passed: bool | None
    detail: str


def find(cells: Iterable[Cell], **match: Any) -> Cell | None:
    """The first cell whose fields equal ``match``."""
    for cell in cells:
        if all(getattr(cell, k) == v for k, v in match.items()):
            return cell
    return None


def table(cells: Sequence[Cell]) -> str:
    """The results as a fixed-width text table (also valid Markdown)."""
    head = (
        "model",
        "protocol",
        "workers",
        "batching",
        "conc",
        "req/s",
        "samples/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU µs/req",
        "wrk CPU µs/req",
        "mean batch",
    )
    rows = [head]
    for c in cells:
        rows.append(
            (
                c.model,
                c.protocol,
                str(c.workers),
                "on" if c.batching else "off",
                str(c.concurrency),
                f"{c.rps:,.0f}",
                f"{c.samples_per_s:,.0f}",
                f"{c.p50_ms:.2f}",
                f"{c.p99_ms:.2f}",
                str(c.errors + c.warmup_errors),
                f"{c.server_cpu_us_per_req:.0f}",
                f"{c.wrk_cpu_us_per_req:.0f}",
                "-" if c.mean_batch is None else f"{c.mean_batch:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def raw_table(points: Sequence[RawPoint]) -> str:
    """Raw onnxruntime samples/s per batch size, one column per session setting."""
    settings = list(dict.fromkeys(p.threads for p in points))
    sizes = list(dict.fromkeys(p.batch_size for p in points))
    by_key = {(p.threads, p.batch_size): p.samples_per_s for p in points}
    lines = ["| batch | " + " | ".join(f"{s} samples/s" for s in settings) + " |"]
    lines.append("|---:|" + "---:|" * len(settings))
    for size in sizes:
        values = " | ".join(f"{by_key[(s, size)]:,.0f}" for s in settings)
        lines.append(f"| {size} | {values} |")
    return "\n".join(lines)


def _fraction(num: Cell | None, den: float | None, name: str) -> float | None:
    if num is None or not den:
        return None
    return (num.samples_per_s if name == "samples" else num.rps) / den


def ratios(cells: Sequence[Cell], raw: Sequence[RawPoint], pair_workers: int | None) -> list[Ratio]:
    """The issue's targets, computed from this run's cells."""
    out: list[Ratio] = []
    on_off: dict[str, float | None] = {}
    for protocol in ("json", "binary"):
        on = find(
            cells,
            model="mlp",
            protocol=protocol,
            workers=pair_workers,
            batching=True,
            concurrency=64,
        )
        off = find(
            cells,
            model="mlp",
            protocol=protocol,
            workers=pair_workers,
            batching=False,
            concurrency=64,
        )
        value = on_off[protocol] = _fraction(on, off.rps if off else None, "rps")
        detail = f"{on.rps:,.0f} / {off.rps:,.0f} req/s" if on and off else "cells missing"
        target = f">= {ON_OFF_MIN:g}" + (" and > JSON" if protocol == "binary" else "")
        passed = None if value is None else value >= ON_OFF_MIN
        if protocol == "binary" and passed and on_off["json"] is not None:
            passed = value is not None and value > on_off["json"]
        out.append(
            Ratio(
                f"mlp c=64 batching on/off, V2 {protocol} (workers={pair_workers})",
                value,
                target,
                passed,
                detail,
            )
        )
    best = max(raw, key=lambda p: p.samples_per_s, default=None)
    for protocol in ("json", "binary"):
        on = find(
            cells,
            model="mlp",
            protocol=protocol,
            workers=pair_workers,
            batching=True,
            concurrency=64,
        )
        value = _fraction(on, best.samples_per_s if best else None, "samples")
        detail = (
            f"{on.samples_per_s:,.0f} served / {best.samples_per_s:,.0f} raw samples/s "
            f"(raw best: {best.threads}, batch {best.batch_size})"
            if on and best
            else "cells missing"
        )
        target = f">= {SERVED_RAW_MIN:g}" if protocol == "json" else "report (>= 0.15)"
        passed = None if value is None else value >= SERVED_RAW_MIN
        out.append(
            Ratio(f"mlp c=64 served/raw samples/s, V2 {protocol}", value, target, passed, detail)
        )
    for protocol in ("json", "binary"):
        cell = find(
            cells, model="linear", protocol=protocol, workers=2, batching=True, concurrency=64
        )
        detail = f"server CPU {cell.server_cpu_us_per_req:.0f} µs/req" if cell else "cells missing"
        passed = None if cell is None else cell.rps >= LINEAR_RPS_MIN
        out.append(
            Ratio(
                f"linear c=64 workers=2 req/s, V2 {protocol}",
                cell.rps if cell else None,
                f">= {LINEAR_RPS_MIN:,.0f}",
                passed,
                detail,
            )
        )
    for protocol in ("json", "binary"):
        cell = find(
            cells, model="linear", protocol=protocol, workers=1, batching=True, concurrency=1
        )
        detail = f"p50 {cell.p50_ms:.2f} ms, max {cell.max_ms:.2f} ms" if cell else "cells missing"
        passed = None if cell is None else cell.p99_ms < LINEAR_P99_MAX_MS
        out.append(
            Ratio(
                f"linear c=1 workers=1 p99 ms, V2 {protocol}",
                cell.p99_ms if cell else None,
                f"< {LINEAR_P99_MAX_MS:g}",
                passed,
                detail,
            )
        )
    errors = sum(c.errors + c.warmup_errors + (c.check != "ok") for c in cells)
    bad = [
        f"{c.model}/{c.protocol}/w{c.workers}/c{c.concurrency}"
        for c in cells
        if c.errors + c.warmup_errors or c.check != "ok"
    ]
    out.append(
        Ratio(
            "errors in all cells (incl. warm-up and answer checks)",
            float(errors),
            "== 0",
            errors == 0,
            ", ".join(bad) or "none",
        )
    )
    return out


def ratio_lines(items: Sequence[Ratio]) -> str:
    """One line per target: PASS/FAIL/INFO, name, value, target and detail."""
    lines = []
    for r in items:
        mark = "n/a " if r.passed is None else ("PASS" if r.passed else "FAIL")
        value = "-" if r.value is None else f"{r.value:,.2f}"
        lines.append(f"{mark}  {r.name}: {value} (target {r.target}; {r.detail})")
    return "\n".join(lines)


def write_json(path: Path, **sections: Any) -> None:
    """Write the run's record; dataclasses are turned into dicts."""

    def plain(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if hasattr(value, "__dataclass_fields__"):
            return asdict(value)
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: plain(v) for k, v in sections.items()}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
