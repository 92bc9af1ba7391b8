"""``inferd shadow ...``: shadow traffic through a running server.

inferd shadow set MODEL VERSION --fraction F [--queue-size N]
inferd shadow show MODEL | results MODEL | remove MODEL

``set`` mirrors fraction F of MODEL's answered requests to VERSION (after the client has
its answer, at the lowest batcher priority); ``results`` shows how the two agree.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from inferd.cli._lifecycle import server_flags
from inferd.cli.models import HttpBackend


def add_parser(commands: Any) -> None:
    """Add the ``shadow`` command and its subcommands."""
    common = server_flags()
    parser = commands.add_parser("shadow", help="mirror a model's traffic to another version")
    sub = parser.add_subparsers(dest="action", required=True)
    put = sub.add_parser("set", parents=[common], help="set or replace a model's shadow")
    put.add_argument("model")
    put.add_argument("version", type=int)
    put.add_argument("--fraction", type=float, required=True, help="0..1 of its requests")
    put.add_argument("--queue-size", type=int, help="copies waiting per process (default 1000)")
    for name, text in (("show", "the model's shadow target"),
                       ("results", "agreement per version pair"),
                       ("remove", "stop mirroring")):  # fmt: skip
        sub.add_parser(name, parents=[common], help=text).add_argument("model")


def run(args: argparse.Namespace) -> int:
    """Execute one ``shadow`` subcommand; prints the result."""
    backend = HttpBackend(args.url, args.api_key, hint="--url")
    path = f"/v1/models/{args.model}/shadow"
    action = args.action
    if action == "set":
        body: dict[str, Any] = {"version": args.version, "fraction": args.fraction}
        if args.queue_size is not None:
            body["queue_size"] = args.queue_size
        result = backend.call("PUT", path, body)
    elif action == "remove":
        result = backend.call("DELETE", path)
    elif action == "results":
        result = backend.call("GET", f"{path}/results")
    else:
        result = backend.call("GET", path)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(results_text(result) if action == "results" else _line(action, result))
    return 0


def _line(action: str, config: dict[str, Any]) -> str:
    head = "removed: " if action == "remove" else ""
    return (f"{head}{config['model']} -> version {config['version']}, fraction "
            f"{config['fraction']:g}, queue {config['queue_size']} (by {config['updated_by']}, "
            f"{config['updated_at']})")  # fmt: skip


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def results_text(result: dict[str, Any]) -> str:
    """A plain-text summary of ``GET /v1/models/{m}/shadow/results``."""
    config = result["config"]
    now = (f"shadow version {config['version']}, fraction {config['fraction']:g}"
           if config else "no shadow now")  # fmt: skip
    lines = [f"{result['model']}: {now}"]
    for p in result["pairs"]:
        shadow, primary = p["shadow_latency_ms"], p["primary_latency_ms"]
        lines += [
            f"  v{p['primary_version']} vs shadow v{p['shadow_version']}: {p['sampled']} sampled,"
            f" {p['compared']} compared, {p['failed']} failed, {p['dropped']} dropped, "
            f"{p['incomparable']} incomparable",
            f"    exact match {_number(p['exact_match_rate'], '.2%')} of {p['label_rows']} "
            f"label rows; mean |diff| {_number(p['mean_abs_diff'])} over {p['values']} values "
            f"(max {_number(p['max_abs_diff'])})",
            f"    latency ms p50/p99: shadow {_number(shadow['p50'], '.3g')}/"
            f"{_number(shadow['p99'], '.3g')}, primary {_number(primary['p50'], '.3g')}/"
            f"{_number(primary['p99'], '.3g')}",
        ]
    if not result["pairs"]:
        lines.append("  (nothing mirrored yet)")
    return "\n".join(lines)
