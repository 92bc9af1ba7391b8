"""``inferd models metrics``: a model's traffic over the last minutes, from a running server.

    inferd models metrics NAME [--minutes N] [--json]

Request rate, p50/p95/p99 latency and error rate, for the model and per version, as
``GET /v1/models/{m}/metrics`` answers them (docs/metrics.md).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add ``metrics`` to the ``models`` subcommands."""
    metrics = sub.add_parser(
        "metrics", help="request rate, latency and errors over the last minutes"
    )
    metrics.add_argument("name")
    metrics.add_argument("--minutes", type=float, default=None,
                         help="the window (default 5, at most 60)")  # fmt: skip
    # Also accepted after the subcommand (``inferd models metrics m --json --url URL``).
    metrics.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    metrics.add_argument("--url", default=argparse.SUPPRESS, help="server URL")
    metrics.add_argument("--api-key", default=argparse.SUPPRESS, help="API key")


def path(args: argparse.Namespace) -> str:
    return f"/v1/models/{args.name}/metrics"


def query(args: argparse.Namespace) -> dict[str, Any]:
    return {"minutes": args.minutes}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row(label: str, entry: dict[str, Any]) -> str:
    latency = entry["latency"]
    rate = entry["error_rate"]
    return (
        f"{label:<10} {entry['requests']:>9} {entry['request_rate']:>9.2f} "
        f"{_ms(latency['p50_ms']):>9} {_ms(latency['p95_ms']):>9} {_ms(latency['p99_ms']):>9} "
        f"{'-' if rate is None else f'{rate:.2%}':>8} {entry['client_errors']:>7}"
    )


def human(result: dict[str, Any]) -> str:
    """A table: one row per version, then the model's total."""
    window, asked = result["window_s"], result["requested_window_s"]
    title = f"{result['model']}: the last {window:.0f} s"
    if window < asked - 1:  # the answering process has not been up that long
        title += f" (of {asked:.0f} s asked)"
    lines = [
        title,
        f"{'version':<10} {'requests':>9} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9} "
        f"{'p99 ms':>9} {'5xx':>8} {'4xx':>7}",
    ]
    lines += [_row(str(entry["version"]), entry) for entry in result["versions"]]
    lines.append(_row("all", result["total"]))
    return "\n".join(lines)
