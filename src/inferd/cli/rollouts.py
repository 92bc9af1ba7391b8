"""``inferd rollouts ...``: canary rollouts through a running server.

inferd rollouts create --model M --candidate V [--baseline V] [--name N]
                       [--steps 1,5,25,50,100] [--step-duration-s S] [--step-requests N]
                       [--unit user_id|session|header] [--unit-key K] [--no-promote]
inferd rollouts create --file spec.json            # the whole spec (flags override)
inferd rollouts list [--model M] [--state S] | show ID | status ID
inferd rollouts pause|resume|advance ID | abort ID [--reason R]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from inferd.cli._lifecycle import request_for, run_request, server_flags
from inferd.errors import InvalidInput

_STATES = ["pending", "running", "paused", "rolled_back", "completed", "aborted"]


def add_parser(commands: Any) -> None:
    """Add the ``rollouts`` command and its subcommands."""
    common = server_flags()
    parser = commands.add_parser("rollouts", help="canary rollouts that roll themselves back")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", parents=[common], help="start a canary rollout")
    create.add_argument("--file", type=Path, help="the whole spec as JSON (flags override)")
    create.add_argument("--model")
    create.add_argument("--candidate", type=int, help="the version to roll out")
    create.add_argument("--baseline", type=int, help="default: the production version")
    create.add_argument("--name")
    create.add_argument("--steps", help="canary percents, e.g. 1,5,25,50,100")
    create.add_argument("--step-duration-s", type=float, help="minimum seconds per step")
    create.add_argument("--step-requests", type=int, help="minimum canary requests per step")
    create.add_argument("--unit", choices=["user_id", "session", "header", "request"])
    create.add_argument("--unit-key", help="session parameter or header / metadata key")
    create.add_argument("--no-promote", action="store_true", help="do not promote at 100%%")
    listing = sub.add_parser("list", parents=[common], help="list rollouts, newest first")
    listing.add_argument("--model")
    listing.add_argument("--state", choices=_STATES)
    for name, text in (("show", "a rollout"), ("status", "per-arm metrics and guardrails"),
                       ("pause", "stop advancing"), ("resume", "advance again"),
                       ("advance", "the next step now (the last one promotes)")):  # fmt: skip
        sub.add_parser(name, parents=[common], help=text).add_argument("id")
    abort = sub.add_parser("abort", parents=[common], help="end it; canary share to 0")
    abort.add_argument("id")
    abort.add_argument("--reason", default="")


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/rollouts`` body the flags (and ``--file``) describe."""
    body: dict[str, Any] = json.loads(args.file.read_text()) if args.file else {}
    flags = {"model": args.model, "candidate": args.candidate, "baseline": args.baseline,
             "name": args.name}  # fmt: skip
    body.update({k: v for k, v in flags.items() if v is not None})
    if args.no_promote:
        body["promote"] = False
    if args.unit or args.unit_key:
        body["unit"] = {"kind": args.unit or "user_id", "key": args.unit_key}
    if args.steps or args.step_duration_s is not None or args.step_requests is not None:
        body["steps"] = _steps(args, body.get("steps"))
    return body


def _steps(args: argparse.Namespace, given: Any) -> list[dict[str, Any]]:
    if args.steps:
        try:
            percents = [float(p) for p in args.steps.split(",")]
        except ValueError:
            raise InvalidInput("--steps", "percents separated by commas, e.g. 1,5,25,50,100",
                               repr(args.steps)) from None  # fmt: skip
        steps: list[dict[str, Any]] = [{"percent": p} for p in percents]
    else:
        steps = [dict(s) for s in given or [{"percent": p} for p in (1, 5, 25, 50, 100)]]
    for step in steps:
        if args.step_duration_s is not None:
            step["min_duration_s"] = args.step_duration_s
        if args.step_requests is not None:
            step["min_requests"] = args.step_requests
    return steps


def run(args: argparse.Namespace) -> int:
    """Execute one ``rollouts`` subcommand; prints the result."""
    body = {"reason": args.reason} if args.action == "abort" else None
    request = request_for("/v1/rollouts", args, spec_from_args, ("status",), body)
    return run_request(args, request, lambda result: _human(args.action, result))


def _line(r: dict[str, Any]) -> str:
    steps = len(r["spec"]["steps"])
    return (f"{r['id']:<16} {r['state']:<11} {r['model']:<16} v{r['baseline']} -> "
            f"v{r['candidate']}  step {r['step'] + 1}/{steps} at {r['percent']:g}%  "
            f"{r['name']}")  # fmt: skip


def _human(action: str, result: Any) -> str:
    if action == "list":
        return "\n".join(_line(r) for r in result) or "(no rollouts)"
    if action == "status":
        return status_text(result)
    return _line(result) + (f"\n  reason: {result['reason']}" if result.get("reason") else "")


def status_text(result: dict[str, Any]) -> str:
    """A plain-text summary of ``GET /v1/rollouts/{id}/status``."""
    lines = [f"{result['rollout']} ({result['state']}) on {result['model']}: step "
             f"{result['step'] + 1}/{result['steps']} at {result['percent']:g}%"]  # fmt: skip
    for arm, s in result["arms"].items():
        lines.append(f"  {arm:<9} {s['requests']} requests, {s['errors']} errors, "
                     f"p99 {_fmt(s['latency_p99_ms'])} ms, prediction mean "
                     f"{_fmt(s['prediction_mean'])}")  # fmt: skip
    lines.extend(f"  BREACH {b['message']}" for b in result["guardrails"]["breaches"])
    nxt = result["next"]
    lines.append(f"  next: {nxt['action']} (wait {nxt['wait_s']:.0f} s, "
                 f"{nxt['requests_needed']} more canary requests)")  # fmt: skip
    if result.get("reason"):
        lines.append(f"  reason: {result['reason']}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
