"""``inferd alerts ...``: alerts of a running server, and checking an alerts file.

inferd alerts list [--rule R] [--limit N] [--json]   active alerts and history (GET /v1/alerts)
inferd alerts check FILE                             validate an alerts.yaml (no server needed)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from inferd.cli.models import DEFAULT_URL, HttpBackend, api_key_default
from inferd.monitoring.alerts_config import load_alerts


def add_parser(commands: Any) -> None:
    """Add the ``alerts`` command and its subcommands."""
    parser = commands.add_parser("alerts", help="alert rules: active alerts and history")
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="active alerts and history, newest first")
    listing.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    listing.add_argument("--api-key", default=api_key_default(), help="default $INFERD_API_KEY")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--rule", help="only this rule's alerts")
    listing.add_argument("--limit", type=int, help="history entries at most (default 100)")
    check = sub.add_parser("check", help="validate an alerts file")
    check.add_argument("file", type=Path)


def run(args: argparse.Namespace) -> int:
    """Execute one ``alerts`` subcommand; prints the result."""
    if args.action == "check":
        config = load_alerts(args.file)  # raises ConfigError, printed by main
        print(f"{args.file}: {len(config.rules)} rules, {len(config.receivers)} receivers: ok")
        return 0
    backend = HttpBackend(args.url, args.api_key, hint="--url")
    result = backend.call("GET", "/v1/alerts", query={"rule": args.rule, "limit": args.limit})
    print(json.dumps(result, indent=2) if args.json else text(result))
    return 0


def _line(a: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
    when = a["resolved_at"] or a["fired_at"] or a["started_at"]
    return f"{a['state']:<9} {a['severity']:<9} {a['rule']:<24} {labels:<32} {when}  {a['summary']}"


def text(result: dict[str, Any]) -> str:
    """The human-readable listing."""
    lines = ["active:", *(_line(a) for a in result["active"])]
    if not result["active"]:
        lines.append("  (none)" if result["evaluating"] else "  (no alerts file: --alerts-file)")
    lines.append("history:")
    lines += [_line(a) for a in result["history"]] or ["  (none)"]
    return "\n".join(lines)
