"""``inferd jobs ...``: batch inference jobs, through a server or on this machine.

    inferd jobs submit --model M [--version N] --input FILES... --output DIR [options]
    inferd jobs run    ...same options...      # in the foreground, with a progress bar
    inferd jobs list [--state S] | show JOB | cancel JOB | resume JOB
    inferd jobs publish JOB --key COL [--store db|redis] [--max-age 1d] [--model M --version N]
    inferd jobs published JOB | unpublish JOB       # the precomputed table from a job's output

``submit``, ``list``, ``show``, ``cancel`` and ``resume`` talk to the server at ``--url``
unless ``--registry-url`` or ``--model-repository`` is given: then they use the registry
directly (``submit`` starts the job in a background process, ``resume`` runs it in the
foreground). ``run`` always runs the job in this process, with the registry of
``--registry-url`` (default: the one ``inferd serve`` uses) and the models of
``--model-repository`` (default: the built-in examples, as for ``serve``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import threading
from typing import Any

from inferd.cli.models import DEFAULT_URL, HttpBackend, api_key_default
from inferd.errors import InferdError
from inferd.jobs import JobRecord, JobService, JobState, parse_columns
from inferd.jobs.progress import Progress, job_details, job_line
from inferd.jobs.spec import parse_list
from inferd.registry import Registry
from inferd.settings import load_settings

_TABLE_ACTIONS = ("publish", "published", "unpublish")
_SPEC_FLAGS = ("version", "batch_size", "chunk_rows", "engine", "parallelism", "ray_address",
               "max_error_rate", "input_format", "nice", "busy_share")  # fmt: skip


def add_parser(commands: Any) -> None:
    """Add the ``jobs`` command and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    common.add_argument(
        "--api-key", default=api_key_default(), help="API key (default $INFERD_API_KEY)"
    )
    common.add_argument("--registry-url", help="use this registry directly, no server")
    common.add_argument("--model-repository", help="import this model repository first")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    jobs = commands.add_parser("jobs", help="batch inference jobs over files")
    sub = jobs.add_subparsers(dest="action", required=True)
    for name, text in (("submit", "queue a job"), ("run", "run a job here, in the foreground")):
        _spec_flags(sub.add_parser(name, parents=[common], help=text))
    listing = sub.add_parser("list", parents=[common], help="list jobs, newest first")
    listing.add_argument("--state", choices=[s.value for s in JobState])
    listing.add_argument("--limit", type=int, default=50)
    for name, text in (("show", "a job and its progress"), ("cancel", "cancel a job"),
                       ("resume", "continue a failed, cancelled or orphaned job")):  # fmt: skip
        parser = sub.add_parser(name, parents=[common], help=text)
        parser.add_argument("job")
        if name == "resume":
            parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _publish_flags(sub, common)


def _publish_flags(sub: Any, common: argparse.ArgumentParser) -> None:
    publish = sub.add_parser(
        "publish", parents=[common], help="serve a job's output as its version's lookup table"
    )
    publish.add_argument("job")
    publish.add_argument("--key", required=True, help="passthrough column with the entity id")
    publish.add_argument("--model", help="check: the job's model")
    publish.add_argument("--version", type=int, help="check: the job's version")
    publish.add_argument("--store", choices=["db", "redis"], default="db",
                         help="registry database (default) or Redis")  # fmt: skip
    publish.add_argument("--max-age", help="entries older than this are not served (90s, 12h, 1d)")
    publish.add_argument("--redis-url", help="Redis for --store redis, with --registry-url "
                         "(default $INFERD_CACHE_REDIS_URL; a server uses its own)")  # fmt: skip
    for name, text in (("published", "the table published from a job"),
                       ("unpublish", "remove the tables published from a job")):  # fmt: skip
        sub.add_parser(name, parents=[common], help=text).add_argument("job")


def _spec_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--version", type=int, help="version (default: production, else latest)")
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        action="extend",
        dest="inputs",
        help="files, folders, globs or URIs (Parquet, CSV, JSON Lines)",
    )
    parser.add_argument("--output", required=True, help="output folder or URI")
    parser.add_argument(
        "--columns",
        action="append",
        default=[],
        metavar="INPUT=COLS",
        help="model input from columns or globs, e.g. x=feat_* (repeatable)",
    )
    parser.add_argument(
        "--passthrough",
        action="append",
        default=[],
        metavar="COL[,COL]",
        help="input columns copied next to the predictions",
    )
    parser.add_argument("--batch-size", type=int, help="rows per model call (default 1024)")
    parser.add_argument("--chunk-rows", type=int, help="rows per chunk and part (default 65536)")
    parser.add_argument("--engine", choices=["local", "ray"], help="default local")
    parser.add_argument("--parallelism", type=int, help="worker processes or Ray actors")
    parser.add_argument("--ray-address", help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--max-error-rate", type=float, help="share of bad rows (default 0.01)")
    parser.add_argument("--format", dest="output_format", choices=["parquet", "jsonl"])
    parser.add_argument("--input-format", choices=["auto", "parquet", "csv", "jsonl"])
    parser.add_argument(
        "--nice", type=int, help="niceness of worker processes (default 19: idle priority)"
    )
    parser.add_argument(
        "--busy-share", type=float, help="CPU share per worker while a server is busy (0.25)"
    )
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body the flags describe."""
    body: dict[str, Any] = {"model": args.model, "inputs": args.inputs, "output": args.output}
    if "://" not in args.output:
        body["output"] = os.path.abspath(os.path.expanduser(args.output))
    body["inputs"] = [i if "://" in i else os.path.abspath(os.path.expanduser(i))
                      for i in args.inputs]  # fmt: skip
    body["columns"] = parse_columns(args.columns)
    body["passthrough"] = parse_list(args.passthrough)
    body.update({k: getattr(args, k) for k in _SPEC_FLAGS if getattr(args, k) is not None})
    if args.output_format:
        body["output_format"] = args.output_format
    if args.overwrite:
        body["overwrite"] = True
    return body


def run(args: argparse.Namespace) -> int:
    """Execute one ``jobs`` subcommand; returns the exit code."""
    direct = args.action == "run" or args.registry_url or args.model_repository
    if args.action in _TABLE_ACTIONS:
        return _tables(args, direct)
    if not direct:
        return _show(args, _remote(args))
    service = _direct_service(args)
    try:
        return _run_direct(args, service)
    finally:
        service.registry.close()


def _run_direct(args: argparse.Namespace, service: JobService) -> int:
    if args.action == "run":
        return _foreground(args, service, service.submit(spec_from_args(args), getpass.getuser()))
    if args.action == "submit":
        job = service.submit(spec_from_args(args), getpass.getuser())
        _start_background(job.id, service.registry.url)
        return _show(args, job.to_dict())
    if args.action == "resume":
        return _foreground(args, service, service.resume(args.job))
    if args.action == "list":
        return _show(args, [j.to_dict() for j in service.list_jobs(args.state, args.limit)])
    if args.action == "show":
        return _show(args, service.get(args.job).to_dict())
    return _show(args, service.cancel(args.job).to_dict())


def _direct_service(args: argparse.Namespace) -> JobService:
    """A job service over the registry itself; imports the model repository first."""
    from inferd.api.app import repository_root
    from inferd.serving.importer import RepositoryImporter

    overrides = {"registry_url": args.registry_url, "model_repository": args.model_repository}
    settings = load_settings(**overrides)
    settings.home.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.resolved_registry_url)
    root = repository_root(settings) if args.action in ("run", "submit") else None
    if root is not None:
        RepositoryImporter(root, registry).import_all()
    cache = str(settings.home / "cache")
    return JobService(registry, settings.resolved_artifact_root, cache, in_server=False)


_DETACH = (
    "import subprocess, sys\n"
    "with open(sys.argv[1], 'ab') as log:\n"
    "    subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,"
    " start_new_session=True)\n"
)


def _start_background(job_id: str, registry_url: str) -> None:
    """Run the job in a detached process that outlives this command.

    A short-lived middle process starts it and exits, so the job's process belongs to init,
    not to this one (nothing to reap here, nothing killed with this terminal).
    """
    from inferd.settings import default_home

    logs = default_home() / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "inferd.cli.main", "jobs", "resume", job_id,
               "--registry-url", registry_url, "--quiet"]  # fmt: skip
    log = str(logs / f"{job_id}.log")
    subprocess.run([sys.executable, "-c", _DETACH, log, *command], check=True, timeout=60)


def _remote(args: argparse.Namespace) -> Any:
    if args.action == "submit":
        return _http(args, "POST", "/v1/jobs", spec_from_args(args))
    if args.action == "list":
        query = f"?limit={args.limit}" + (f"&state={args.state}" if args.state else "")
        return _http(args, "GET", "/v1/jobs" + query)
    if args.action == "show":
        return _http(args, "GET", f"/v1/jobs/{args.job}")
    return _http(args, "POST", f"/v1/jobs/{args.job}/{args.action}")


def _http(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    hint = "--url, or --registry-url / --model-repository to work without a server"
    return HttpBackend(args.url, args.api_key, hint).call(method, path, body)


def _foreground(args: argparse.Namespace, service: JobService, job: JobRecord) -> int:
    interrupt = threading.Event()
    outcome: list[JobRecord] = []
    errors: list[InferdError] = []

    def work() -> None:
        try:
            outcome.append(service.run_here(job.id, interrupt))
        except InferdError as err:
            errors.append(err)

    thread = threading.Thread(target=work, name="job-foreground", daemon=True)
    thread.start()
    progress = Progress(sys.stderr, quiet=args.quiet or args.json)
    try:
        while thread.is_alive():
            thread.join(0.5)
            progress.show(service.get(job.id).to_dict())
    except KeyboardInterrupt:
        print("\ninterrupted: stopping after the chunks in flight...", file=sys.stderr)
        interrupt.set()
        thread.join()
    if errors:
        raise errors[0]
    final = outcome[0] if outcome else service.get(job.id)
    progress.done(final.to_dict())
    _show(args, final.to_dict())
    return 0 if final.state is JobState.SUCCEEDED else 1


def _show(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif isinstance(result, list):
        print("\n".join(job_line(j) for j in result) or "(no jobs)")
    else:
        print(job_details(result))
    return 0


def _tables(args: argparse.Namespace, direct: bool) -> int:
    """``publish``, ``published`` and ``unpublish``: on the server, or on the registry."""
    path = f"/v1/jobs/{args.job}/publish"
    body: dict[str, Any] | None = None
    if args.action == "publish":
        body = {"key": args.key, "store": args.store}
        body |= {k: getattr(args, k) for k in ("max_age", "model", "version")
                 if getattr(args, k) is not None}  # fmt: skip
    if not direct:
        method = {"publish": "POST", "published": "GET", "unpublish": "DELETE"}[args.action]
        return _show_table(args, _http(args, method, path, body))
    from inferd.jobs.publish import Publisher

    settings = load_settings(registry_url=args.registry_url)
    redis_url = getattr(args, "redis_url", None) or settings.cache_redis_url
    registry = Registry(settings.resolved_registry_url)
    try:
        publisher = Publisher(registry, redis_url)
        if args.action == "publish":
            table = publisher.publish(args.job, body or {}, getpass.getuser())
        elif args.action == "published":
            table = publisher.status(args.job)
        else:
            table = publisher.unpublish(args.job, getpass.getuser())
    finally:
        registry.close()
    return _show_table(args, table.to_dict())


def _show_table(args: argparse.Namespace, table: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    age = table.get("max_age_s")
    print(f"table {table['id']}: model {table['model']} version {table['version']}, "
          f"{table['state']}, {table['rows']} rows keyed by '{table['key_column']}' "
          f"in {table['store']}, computed {table['age_s']:.0f} s ago"
          + (f", served up to {age:g} s old" if age else "")
          + (f"; error: {table['error']}" if table.get("error") else ""))  # fmt: skip
    return 0
