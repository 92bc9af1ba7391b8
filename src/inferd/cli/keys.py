"""``inferd keys ...``: API keys, through a running server (admin key) or the registry.

    inferd keys create --role predict|operator|admin [--models m1,m2] [--name N]
    inferd keys list [--revoked]
    inferd keys revoke ID

``create`` prints the key once; only its hash is stored. With ``--registry-url`` the
commands write the registry directly (how the first key is made on a server with auth on
and no ``INFERD_ADMIN_KEY``); servers pick the change up within one poll interval.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from inferd.cli.models import DEFAULT_URL, HttpBackend, api_key_default
from inferd.registry import Registry
from inferd.security.keys import KeyStore, Role, parse_models


def add_parser(commands: Any) -> None:
    """Add the ``keys`` command and its subcommands."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    keys.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    keys.add_argument("--registry-url", help="write the registry directly instead")
    keys.add_argument(
        "--api-key", default=api_key_default(), help="admin API key (default $INFERD_API_KEY)"
    )
    keys.add_argument("--json", action="store_true", help="machine-readable output")
    sub = keys.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=[r.label for r in Role])
    create.add_argument("--models", help="comma-separated model names (default: every model)")
    create.add_argument("--name", default="", help="a label, e.g. who holds the key")
    listing = sub.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("--revoked", action="store_true", help="include revoked keys")
    sub.add_parser("revoke", help="revoke a key at once").add_argument("id")


def run(args: argparse.Namespace) -> int:
    """Execute one ``keys`` subcommand; prints the result."""
    result = _direct(args) if args.registry_url else _http(args)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_human(args.action, result))
    return 0


def _http(args: argparse.Namespace) -> Any:
    backend = HttpBackend(args.url, args.api_key)
    if args.action == "create":
        body = {"role": args.role, "models": args.models, "name": args.name}
        return backend.call("POST", "/v1/keys", body)
    if args.action == "list":
        return backend.call("GET", "/v1/keys", query={"revoked": "true" if args.revoked else None})
    return backend.call("DELETE", f"/v1/keys/{args.id}")


def _direct(args: argparse.Namespace) -> Any:
    registry = Registry(args.registry_url)
    try:
        store = KeyStore(registry)
        actor = getpass.getuser()
        if args.action == "create":
            role, models = Role.parse(args.role), parse_models(args.models)
            key, record = store.create(role, models, args.name, actor)
            return {**record.to_dict(), "key": key}
        if args.action == "list":
            return [k.to_dict() for k in store.list(args.revoked)]
        return store.revoke(args.id, actor).to_dict()
    finally:
        registry.close()


def _human(action: str, result: Any) -> str:
    if action == "create":
        scope = ",".join(result["models"] or []) or "every model"
        return (
            f"{result['key']}\n"
            f"(id {result['id']}, role {result['role']}, {scope}; shown once: store it now)"
        )
    if action == "list":
        rows = []
        for k in result:
            revoked = f"  revoked {k['revoked_at']}" if k["revoked_at"] else ""
            scope = ",".join(k["models"] or []) or "*"
            rows.append(
                f"{k['id']:<10} {k['role']:<9} {scope:<24} {k['created_at']}  {k['name']}{revoked}"
            )
        return "\n".join(rows) or "(no keys)"
    return f"revoked {result['id']} at {result['revoked_at']}"
