"""The results table, the issue's target ratios with pass/fail, and the JSON record."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
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
    other_run_errors: int  # errors in the warm-up and in repeats not reported
    socket_errors: int
    wrk_non2xx: int
    server_non2xx: int
    server_cpu_us_per_req: float
    wrk_cpu_us_per_req: float
    other_cpu_cores: float  # load of other processes on the machine during the timed run
    mean_batch: float | None
    runs_rps: list[float]  # req/s of every timed run (--repeat)
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


_COLUMNS: tuple[tuple[str, Callable[[Cell], str]], ...] = (
    ("model", lambda c: c.model),
    ("protocol", lambda c: c.protocol),
    ("workers", lambda c: str(c.workers)),
    ("batching", lambda c: "on" if c.batching else "off"),
    ("conc", lambda c: str(c.concurrency)),
    ("req/s", lambda c: f"{c.rps:,.0f}"),
    ("samples/s", lambda c: f"{c.samples_per_s:,.0f}"),
    ("p50 ms", lambda c: f"{c.p50_ms:.2f}"),
    ("p99 ms", lambda c: f"{c.p99_ms:.2f}"),
    ("errors", lambda c: str(c.errors + c.other_run_errors)),
    ("server CPU µs/req", lambda c: f"{c.server_cpu_us_per_req:.0f}"),
    ("wrk CPU µs/req", lambda c: f"{c.wrk_cpu_us_per_req:.0f}"),
    ("other load", lambda c: f"{c.other_cpu_cores:.2f}"),
    ("mean batch", lambda c: "-" if c.mean_batch is None else f"{c.mean_batch:.1f}"),
)


def table(cells: Sequence[Cell]) -> str:
    """The results as a fixed-width Markdown table."""
    rows = [[name for name, _ in _COLUMNS]]
    rows += [[cell_format(c) for _, cell_format in _COLUMNS] for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = [
        "| " + " | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


def raw_table(points: Sequence[RawPoint]) -> str:
    """Raw onnxruntime samples/s per batch size, one column per session setting.

    Points measured while other processes kept more than 0.25 cores busy are marked ``*``.
    """
    settings = list(dict.fromkeys(p.threads for p in points))
    sizes = list(dict.fromkeys(p.batch_size for p in points))
    by_key = {(p.threads, p.batch_size): p for p in points}
    lines = ["| batch | " + " | ".join(f"{s} samples/s" for s in settings) + " |"]
    lines.append("|---:|" + "---:|" * len(settings))
    for size in sizes:
        cells = [by_key[(s, size)] for s in settings]
        values = " | ".join(
            f"{p.samples_per_s:,.0f}{' *' if p.other_cores > 0.25 else ''}" for p in cells
        )
        lines.append(f"| {size} | {values} |")
    return "\n".join(lines)


def _mlp64(
    cells: Sequence[Cell], protocol: str, workers: int | None, batching: bool
) -> Cell | None:
    return find(
        cells, model="mlp", protocol=protocol, workers=workers, batching=batching, concurrency=64
    )


def _on_off(cells: Sequence[Cell], workers: int | None) -> list[Ratio]:
    out: list[Ratio] = []
    json_value: float | None = None
    for protocol in ("json", "binary"):
        on, off = _mlp64(cells, protocol, workers, True), _mlp64(cells, protocol, workers, False)
        value = on.rps / off.rps if on and off and off.rps else None
        passed = None if value is None else value >= ON_OFF_MIN
        target = f">= {ON_OFF_MIN:g}"
        if protocol == "json":
            json_value = value
        else:
            target += " and > JSON's"
            if passed and json_value is not None:
                passed = value is not None and value > json_value
        detail = f"{on.rps:,.0f} / {off.rps:,.0f} req/s" if on and off else "cells missing"
        name = f"mlp c=64 batching on/off, V2 {protocol}, workers={workers}"
        out.append(Ratio(name, value, target, passed, detail))
    return out


def _served_raw(cells: Sequence[Cell], raw: Sequence[RawPoint], workers: int | None) -> list[Ratio]:
    best = max(raw, key=lambda p: p.samples_per_s, default=None)
    out: list[Ratio] = []
    for protocol in ("json", "binary"):
        on = _mlp64(cells, protocol, workers, True)
        if on is None or best is None:
            out.append(Ratio(f"mlp c=64 served/raw, V2 {protocol}", None, "", None, "missing"))
            continue
        value = on.samples_per_s / best.samples_per_s
        detail = (
            f"{on.samples_per_s:,.0f} served / {best.samples_per_s:,.0f} raw samples/s; "
            f"raw best: {best.threads} threads, batch {best.batch_size}"
        )
        target = f">= {SERVED_RAW_MIN:g}" + ("" if protocol == "json" else " (JSON's target)")
        name = f"mlp c=64 served/raw samples/s, V2 {protocol}, workers={workers}"
        out.append(Ratio(name, value, target, value >= SERVED_RAW_MIN, detail))
    return out


def _linear(cells: Sequence[Cell]) -> list[Ratio]:
    out: list[Ratio] = []
    for protocol in ("json", "binary"):
        name = f"linear c=64 workers=2 req/s, V2 {protocol}"
        c = find(cells, model="linear", protocol=protocol, workers=2, concurrency=64)
        if c is None:
            out.append(Ratio(name, None, f">= {LINEAR_RPS_MIN:,.0f}", None, "cell missing"))
        else:
            detail = f"server CPU {c.server_cpu_us_per_req:.0f} µs/req"
            out.append(
                Ratio(name, c.rps, f">= {LINEAR_RPS_MIN:,.0f}", c.rps >= LINEAR_RPS_MIN, detail)
            )
    for protocol in ("json", "binary"):
        name = f"linear c=1 workers=1 p99 ms, V2 {protocol}"
        c = find(cells, model="linear", protocol=protocol, workers=1, concurrency=1)
        target = f"< {LINEAR_P99_MAX_MS:g}"
        if c is None:
            out.append(Ratio(name, None, target, None, "cell missing"))
        else:
            detail = f"p50 {c.p50_ms:.2f} ms, max {c.max_ms:.2f} ms"
            out.append(Ratio(name, c.p99_ms, target, c.p99_ms < LINEAR_P99_MAX_MS, detail))
    return out


def _errors(cells: Sequence[Cell]) -> Ratio:
    def count(c: Cell) -> int:
        return c.errors + c.other_run_errors + (c.check != "ok")

    errors = sum(count(c) for c in cells)
    bad = [f"{c.model}/{c.protocol}/w{c.workers}/c{c.concurrency}" for c in cells if count(c)]
    name = "errors in all cells (incl. warm-up and answer checks)"
    return Ratio(name, float(errors), "== 0", errors == 0, ", ".join(bad) or "none")


def ratios(cells: Sequence[Cell], raw: Sequence[RawPoint], pair_workers: int | None) -> list[Ratio]:
    """The issue's targets, computed from this run's cells.

    Args:
        cells: every measured cell.
        raw: raw onnxruntime points; the best one is the denominator of served/raw.
        pair_workers: workers of the batching on/off pair (and of served/raw).
    """
    return [
        *_on_off(cells, pair_workers),
        *_served_raw(cells, raw, pair_workers),
        *_linear(cells),
        _errors(cells),
    ]


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
