"""What ``inferd experiments``, ``inferd rollouts`` and ``inferd shadow`` share.

The server flags every such command takes (:func:`server_flags`), and for the lifecycle
commands the one mapping of a subcommand to its request (:func:`request_for`), the same shape
as ``inferd.api._lifecycle`` serves:

    create           POST /v1/<things>            the body the flags describe
    list             GET  /v1/<things>?model=&state=
    show ID          GET  /v1/<things>/ID
    <view> ID        GET  /v1/<things>/ID/<view>  (results, status)
    <action> ID      POST /v1/<things>/ID/<action>
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Collection
from typing import Any

from inferd.cli.models import DEFAULT_URL, HttpBackend, api_key_default


def server_flags() -> argparse.ArgumentParser:
    """A parent parser with ``--url``, ``--api-key`` and ``--json``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    common.add_argument("--api-key", default=api_key_default(), help="default $INFERD_API_KEY")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


Request = tuple[str, str, Any, Any]  # method, path, body, query


def request_for(
    base: str, args: argparse.Namespace, create: Callable[[argparse.Namespace], Any],
    views: Collection[str], body: Any = None,
) -> Request:  # fmt: skip
    """The request one lifecycle subcommand (``args.action``) makes.

    Args:
        base: the collection's path, e.g. ``/v1/rollouts``.
        args: the parsed flags (``action``, and ``id``, ``model``, ``state`` where they apply).
        create: the create body from the flags.
        views: the subcommands that read ``GET base/ID/<name>``.
        body: an action's body (``{}`` when None).
    """
    action = args.action
    if action == "create":
        return "POST", base, create(args), None
    if action == "list":
        return "GET", base, None, {"model": args.model, "state": args.state}
    if action == "show":
        return "GET", f"{base}/{args.id}", None, None
    if action in views:
        return "GET", f"{base}/{args.id}/{action}", None, None
    return "POST", f"{base}/{args.id}/{action}", {} if body is None else body, None


def run_request(args: argparse.Namespace, request: Request, human: Callable[[Any], str]) -> int:
    """Send ``request`` to the server and print the answer (``--json``: as JSON)."""
    backend = HttpBackend(args.url, args.api_key, hint="--url")
    method, path, body, query = request
    result = backend.call(method, path, body, query=query)
    print(json.dumps(result, indent=2, default=str) if args.json else human(result))
    return 0
