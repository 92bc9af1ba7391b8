"""``inferd experiments ...``: A/B/n experiments through a running server.

inferd experiments create --model M --variant control=1:0.7 --variant treatment=2:0.3
                          [--name N] [--unit user_id|session|header|request] [--unit-key K]
                          [--metric conversion] [--guard error_rate] [--min-sample-size N]
                          [--alpha A] [--max-duration-s S] [--correction holm|bh]
                          [--fallback control|exclude|VARIANT] [--sample-rate R]
inferd experiments create --file spec.json
inferd experiments list [--model M] [--state S] | show ID | results ID
inferd experiments start|pause|resume ID | stop ID [--reason R]
inferd experiments conclude ID [--winner VARIANT] [--reason R]
inferd experiments weights ID 0.5 0.5
inferd experiments outcome ID (--unit U | --request R) (--conversion 0|1 | --value X | --label L)
inferd experiments outcome ID --file outcomes.jsonl      # one JSON outcome per line
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from inferd.cli._lifecycle import Request, request_for, run_request, server_flags
from inferd.errors import InvalidInput

_STATES = ["draft", "running", "paused", "concluded", "stopped"]
_METRICS = ["conversion", "value", "label", "error_rate", "latency_ms"]


def add_parser(commands: Any) -> None:
    """Add the ``experiments`` command and its subcommands."""
    common = server_flags()
    parser = commands.add_parser("experiments", help="A/B/n experiments between model versions")
    sub = parser.add_subparsers(dest="action", required=True)
    _create_flags(sub.add_parser("create", parents=[common], help="create a draft experiment"))
    listing = sub.add_parser("list", parents=[common], help="list experiments, newest first")
    listing.add_argument("--model")
    listing.add_argument("--state", choices=_STATES)
    for name, text in (("show", "an experiment"), ("results", "per-variant results"),
                       ("start", "start routing"), ("pause", "pause routing"),
                       ("resume", "resume routing")):  # fmt: skip
        sub.add_parser(name, parents=[common], help=text).add_argument("id")
    stop = sub.add_parser("stop", parents=[common], help="stop without a winner")
    stop.add_argument("id")
    stop.add_argument("--reason", default="")
    conclude = sub.add_parser("conclude", parents=[common], help="end it; promote a winner")
    conclude.add_argument("id")
    conclude.add_argument("--winner", help="variant whose version is promoted")
    conclude.add_argument("--reason", default="")
    weights = sub.add_parser("weights", parents=[common], help="change the weights")
    weights.add_argument("id")
    weights.add_argument("weights", nargs="+", type=float)
    outcome = sub.add_parser("outcome", parents=[common], help="post outcomes")
    outcome.add_argument("id")
    outcome.add_argument("--unit")
    outcome.add_argument("--request")
    outcome.add_argument("--conversion", type=int, choices=[0, 1])
    outcome.add_argument("--value", type=float)
    outcome.add_argument("--label")
    outcome.add_argument("--file", type=Path, help="JSON Lines of outcome objects")


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="the whole spec as JSON (flags override)")
    parser.add_argument("--model")
    parser.add_argument("--name")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=VERSION:WEIGHT",
                        help="a variant, control first (repeat)")  # fmt: skip
    parser.add_argument("--unit", choices=["user_id", "session", "header", "request"])
    parser.add_argument("--unit-key", help="session parameter or header / metadata key")
    parser.add_argument("--metric", choices=_METRICS, help="primary metric")
    parser.add_argument("--guard", action="append", choices=_METRICS, help="guard metric (repeat)")
    parser.add_argument("--min-sample-size", type=int)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--power", type=float)
    parser.add_argument("--max-duration-s", type=float)
    parser.add_argument("--correction", choices=["holm", "bh"])
    parser.add_argument("--fallback")
    parser.add_argument("--sample-rate", type=float, help="share of requests in the exposure log")


def parse_variant(text: str) -> dict[str, Any]:
    """``control=1:0.7`` -> ``{"name": "control", "version": 1, "weight": 0.7}``."""
    name, _, rest = text.partition("=")
    version, _, weight = rest.partition(":")
    try:
        return {"name": name, "version": int(version), "weight": float(weight)}
    except ValueError:
        raise InvalidInput(
            "--variant", "NAME=VERSION:WEIGHT, e.g. control=1:0.7", repr(text)
        ) from None


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/experiments`` body the flags (and ``--file``) describe."""
    body: dict[str, Any] = json.loads(args.file.read_text()) if args.file else {}
    flags = {"model": args.model, "name": args.name, "primary_metric": args.metric,
             "guard_metrics": args.guard, "min_sample_size": args.min_sample_size,
             "alpha": args.alpha, "power": args.power, "max_duration_s": args.max_duration_s,
             "correction": args.correction, "fallback": args.fallback,
             "exposure_sample_rate": args.sample_rate}  # fmt: skip
    body.update({k: v for k, v in flags.items() if v is not None})
    if args.variant:
        body["variants"] = [parse_variant(v) for v in args.variant]
    if args.unit or args.unit_key:
        body["unit"] = {"kind": args.unit or "user_id", "key": args.unit_key}
    body.setdefault("name", f"{body.get('model', 'model')} experiment")
    return body


def _outcomes(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.file:
        lines = args.file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    item: dict[str, Any] = {"unit_id": args.unit} if args.unit else {"request_id": args.request}
    if args.conversion is not None:
        item.update(kind="conversion", value=args.conversion)
    elif args.value is not None:
        item.update(kind="value", value=args.value)
    else:
        item.update(kind="label", label=args.label)
    return [item]


def run(args: argparse.Namespace) -> int:
    """Execute one ``experiments`` subcommand; prints the result."""
    base = "/v1/experiments"
    if args.action == "outcome":
        body = {"outcomes": _outcomes(args)}
        request: Request = ("POST", f"{base}/{args.id}/outcomes", body, None)
    else:
        request = request_for(base, args, spec_from_args, ("results",), _action_body(args))
    return run_request(args, request, lambda result: _human(args.action, result))


def _action_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "stop":
        return {"reason": args.reason}
    if args.action == "conclude":
        return {"winner": args.winner, "reason": args.reason}
    if args.action == "weights":
        return {"weights": args.weights}
    return {}


def _line(e: dict[str, Any]) -> str:
    arms = ", ".join(f"{v['name']}=v{v['version']}:{w:g}"
                     for v, w in zip(e["spec"]["variants"], e["weights"], strict=True))  # fmt: skip
    winner = f"  winner {e['winner']}" if e.get("winner") else ""
    return f"{e['id']:<18} {e['state']:<10} {e['model']:<16} {arms}  {e['name']}{winner}"


def _human(action: str, result: Any) -> str:
    if action == "list":
        return "\n".join(_line(e) for e in result) or "(no experiments)"
    if action == "outcome":
        return f"accepted {result['accepted']}, waiting for their exposure {result['pending']}"
    if action != "results":
        return _line(result) + (f"\n  reason: {result['reason']}" if result.get("reason") else "")
    return results_text(result)


def results_text(result: dict[str, Any]) -> str:
    """A plain-text summary of ``GET /v1/experiments/{id}/results``."""
    lines = [f"{result['experiment']} ({result['state']}) on {result['model']}"]
    for v in result["variants"]:
        lines.append(f"  {v['name']:<14} v{v['version']} weight {v['weight']:g}: "
                     f"{v['requests']} requests, {v['errors']} errors")  # fmt: skip
    srm = result["srm"]
    if srm["warning"]:
        lines.append(
            f"  WARNING sample ratio mismatch (p = {srm['p_value']:.2g}): check assignment"
        )
    for metric, doc in result["metrics"].items():
        tag = " (primary)" if doc.get("primary") else ""
        means = ", ".join(
            f"{v['name']} {_fmt(v.get('mean'))} (n={v['n']})" for v in doc["variants"]
        )
        lines.append(f"  {metric}{tag}: {means}")
        for c in doc["comparisons"]:
            verdict = "significant" if c["significant"] else "not significant"
            ci = c["ci"] or [None, None]
            lines.append(f"    {c['variant']} vs {result['control']}: {_fmt(c['effect'])} "
                         f"[{_fmt(ci[0])}, {_fmt(ci[1])}], p = {_fmt(c['p_value_adjusted'])} "
                         f"(sequential {_fmt(c['p_value_sequential'])}), {verdict}")  # fmt: skip
    reached = "reached" if result["sample_size"]["reached"] else "not reached"
    lines.append(
        f"  sample size {result['sample_size']['minimum_per_variant']} per variant: {reached}"
    )
    lines.extend(f"  GUARD {b}" for b in result["guard_breaches"])
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
