"""``inferd models ...``: manage the registry through a running server or directly.

    inferd models list [--tag T] [--stage S]
    inferd models show NAME
    inferd models register NAME PATH_OR_URI [--version N] [--metadata k=v ...]
                           [--stage staging] [--platform P | --config model.yaml] [--upload]
                           [--reference data.parquet [--categorical COLUMN ...]]
    inferd models promote NAME VERSION
    inferd models rollback NAME
    inferd models archive NAME VERSION
    inferd models delete NAME [VERSION]
    inferd models drift NAME [--version N]             (inferd.cli.drift)
    inferd models metrics NAME [--minutes N]           traffic summary (inferd.cli.metrics)
    inferd models reference NAME VERSION FILE          drift reference (.csv, .parquet)

By default the commands talk to the server at ``--url`` (``http://127.0.0.1:8000``), which
also loads, warms and swaps at once. With ``--registry-url`` they write the registry
directly; servers pick the change up at their next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from inferd.api.drift import DriftRoutes
from inferd.api.management import ManagementRoutes
from inferd.cli import drift, metrics
from inferd.errors import ConfigError, InferdError, InvalidInput
from inferd.monitoring.drift import DriftMonitor
from inferd.monitoring.drift_store import DriftStore
from inferd.registry import FsspecArtifactStore, Registry
from inferd.serving.management import ManagementPlane
from inferd.settings import default_home

DEFAULT_URL = "http://127.0.0.1:8000"


def add_parser(commands: Any) -> None:
    """Add the ``models`` command and its subcommands."""
    models = commands.add_parser("models", help="manage registered models and versions")
    models.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    models.add_argument("--registry-url", help="write the registry directly instead")
    models.add_argument("--artifact-root", help="where --upload copies artifacts")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument(
        "--api-key", default=api_key_default(), help="API key (default $INFERD_API_KEY)"
    )
    sub = models.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list models")
    listing.add_argument("--tag")
    listing.add_argument("--stage")
    sub.add_parser("show", help="a model and its versions").add_argument("name")
    register = sub.add_parser("register", help="register an artifact as a new version")
    register.add_argument("name")
    register.add_argument("artifact", help="local path or URI (file://, s3://, ...)")
    register.add_argument("--version", type=int)
    register.add_argument(
        "--metadata", nargs="*", default=[], metavar="KEY=VALUE",
        help="numbers go to metrics; description=, tags=a,b, training.K=V",
    )  # fmt: skip
    register.add_argument("--stage", default="registered", choices=["registered", "staging"])
    register.add_argument("--platform", help="platform of a new model (onnx, sklearn, ...)")
    register.add_argument("--config", type=Path, help="model.yaml for a new model")
    register.add_argument("--upload", action="store_true", help="copy into the artifact root")
    drift.add_reference_options(register)
    for action in ("promote", "archive"):
        parser = sub.add_parser(action, help=f"{action} a version")
        parser.add_argument("name")
        parser.add_argument("version", type=int)
    sub.add_parser("rollback", help="production back to the previous version").add_argument("name")
    delete = sub.add_parser("delete", help="delete a model, or one version")
    delete.add_argument("name")
    delete.add_argument("version", type=int, nargs="?")
    drift.add_parsers(sub)
    metrics.add_parsers(sub)


def api_key_default() -> str | None:
    """The API key the CLI sends unless ``--api-key`` says otherwise."""
    return os.environ.get("INFERD_API_KEY") or None


def parse_metadata(pairs: list[str]) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` pairs into registry metadata.

    Raises:
        InvalidInput: a pair is not KEY=VALUE, or a plain key has a non-numeric value.
    """
    metadata: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput("--metadata", "KEY=VALUE", repr(pair))
        if key == "description":
            metadata["description"] = value
        elif key == "tags":
            metadata["tags"] = [t for t in value.split(",") if t]
        elif key.startswith("training."):
            metadata.setdefault("training", {})[key.removeprefix("training.")] = value
        else:
            try:
                metadata.setdefault("metrics", {})[key] = float(value)
            except ValueError:
                raise InvalidInput(
                    f"--metadata {key}", "a number (a metric), or description=, tags=a,b, "
                    "training.KEY=VALUE", repr(value),
                ) from None  # fmt: skip
    return metadata


def run(args: argparse.Namespace) -> int:
    """Execute one ``models`` subcommand; prints the result."""
    backend: _Backend = (
        _Direct(args.registry_url, args.artifact_root)
        if args.registry_url
        else HttpBackend(args.url, args.api_key)
    )
    result = _dispatch(backend, args)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_human(args.action, result))
    return 0


def _dispatch(backend: _Backend, args: argparse.Namespace) -> Any:
    action = args.action
    if action == "list":
        return backend.call("GET", "/v1/models", query={"tag": args.tag, "stage": args.stage})
    if action == "show":
        return backend.call("GET", f"/v1/models/{args.name}")
    if action == "register":
        return backend.register(args)
    if action == "promote":
        return backend.call("POST", f"/v1/models/{args.name}/versions/{args.version}/promote")
    if action == "archive":
        return backend.call("POST", f"/v1/models/{args.name}/versions/{args.version}/archive")
    if action == "rollback":
        return backend.call("POST", f"/v1/models/{args.name}/rollback")
    if action == "drift":
        return backend.call("GET", f"/v1/models/{args.name}/drift", query=drift.drift_query(args))
    if action == "metrics":
        if not isinstance(backend, HttpBackend):
            raise InferdError("models metrics: traffic is counted by a running server; pass --url")
        return backend.call("GET", metrics.path(args), query=metrics.query(args))
    if action == "reference":
        body = drift.reference_body(args.file, args.categorical)
        return backend.call("PUT", drift.reference_path(args.name, args.version), body)
    if args.version is not None:
        return backend.call("DELETE", f"/v1/models/{args.name}/versions/{args.version}")
    return backend.call("DELETE", f"/v1/models/{args.name}")


def _register_body(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    body: dict[str, Any] = {"artifact_uri": uri, "stage": args.stage}
    if args.version is not None:
        body["version"] = args.version
    metadata = parse_metadata(args.metadata)
    if metadata:
        body["metadata"] = metadata
    if args.config is not None:
        try:
            body["config"] = yaml.safe_load(args.config.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(str(args.config), "(file)", f"cannot read: {err}") from err
    elif args.platform:
        body["config"] = {"platform": args.platform}
    return body


class _Backend:
    def call(self, method: str, path: str, body: Any = None, query: Any = None) -> Any:
        raise NotImplementedError

    def register(self, args: argparse.Namespace) -> Any:
        uri = args.artifact
        if args.upload:
            root = args.artifact_root or str(default_home() / "artifacts")
            store = FsspecArtifactStore(root, default_home() / "cache")
            version = args.version or 0
            uri = store.upload(Path(args.artifact).expanduser().resolve(), args.name, version)
        elif "://" not in uri:
            uri = str(Path(uri).expanduser().resolve())
        body = None
        if args.reference:  # read before registering: a bad file registers nothing
            body = drift.reference_body(args.reference, args.categorical)
        record = self.call("POST", f"/v1/models/{args.name}/versions", _register_body(args, uri))
        if body is not None:
            path = drift.reference_path(args.name, record["version"])
            record["reference"] = self.call("PUT", path, body)
        return record


class HttpBackend(_Backend):
    """The management API of a running server (with an API key when auth is on)."""

    def __init__(
        self, url: str, api_key: str | None = None, hint: str = "--url / --registry-url"
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.hint = hint  # what else the command accepts when no server answers

    def call(self, method: str, path: str, body: Any = None, query: Any = None) -> Any:
        if query:
            path += "?" + "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json", "x-inferd-actor": getpass.getuser()}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            message = json.loads(err.read() or b"{}").get("error", err.reason)
            raise InferdError(f"{method} {path}: {err.code}: {message}") from None
        except urllib.error.URLError as err:
            raise InferdError(
                f"cannot reach the server at {self.url} ({err.reason}); start it with "
                f"`inferd serve` or pass {self.hint}"
            ) from None


class _Direct(_Backend):
    """The same REST paths, answered by the management plane over the registry itself."""

    def __init__(self, registry_url: str, artifact_root: str | None) -> None:
        home = default_home()
        store = FsspecArtifactStore(artifact_root or str(home / "artifacts"), home / "cache")
        registry = Registry(registry_url)
        plane = ManagementPlane(registry, store, None)
        self.routes = ManagementRoutes(plane)
        self.routes.drift = DriftRoutes(DriftMonitor(DriftStore(registry)), plane)

    def call(self, method: str, path: str, body: Any = None, query: Any = None) -> Any:
        parts = path.strip("/").split("/")[1:]
        raw = json.dumps(body).encode() if body is not None else b""
        clean = {k: v for k, v in (query or {}).items() if v is not None}
        actor = getpass.getuser()
        _, payload = asyncio.run(self.routes.handle(method, parts, clean, raw, actor))
        return payload


def _human(action: str, result: Any) -> str:
    if action == "drift":
        return drift.human(result)
    if action == "metrics":
        return metrics.human(result)
    if action == "list":
        rows = [
            f"{m['name']:<24} production={m['production_version']} "
            f"latest={m['latest_version']} tags={','.join(m['tags'])}"
            for m in result
        ]
        return "\n".join(rows) or "(no models)"
    if action == "show":
        lines = [f"{result['name']}: {result['description']}".rstrip(": ")]
        for v in result["versions"]:
            lines.append(
                f"  {v['version']:>4}  {v['stage']:<11} {v['status']:<10} "
                f"{v.get('served', ''):<10} {v['artifact_uri']}  {v['metrics'] or ''}"
            )
        return "\n".join(lines)
    if isinstance(result, dict) and "version" in result:
        return (
            f"{result['model']} version {result['version']}: {result['stage']} ({result['status']})"
        )
    return json.dumps(result, default=str)
