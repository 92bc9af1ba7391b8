"""The ``inferd`` command.

``inferd serve`` turns its flags into ``INFERD_*`` environment variables, so every worker
process rebuilds the very same settings (flags > environment > defaults), then hands over to
uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from inferd import __version__
from inferd.cli import alerts, experiments, jobs, keys, models, plan, rollouts, shadow
from inferd.errors import InferdError
from inferd.monitoring.alerts_config import load_alerts
from inferd.settings import Settings, load_settings

logger = logging.getLogger("inferd")

# flag name -> settings field
_SERVE_FLAGS = {
    "model_repository": "model repository folder (default: the built-in examples)",
    "registry_url": "registry database URL (default: sqlite under INFERD_HOME)",
    "host": "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    "http_port": "HTTP port (default 8000)",
    "grpc_port": "gRPC port (default 8001)",
    "grpc_transport": "gRPC core: native (inferd's own, the default) or grpcio (C-core)",
    "workers": "server processes sharing the HTTP port (default 1)",
    "max_body_bytes": "largest request body in bytes (default 64 MiB)",
    "graceful_timeout_s": "seconds in-flight requests may take to finish on SIGTERM",
    "drain_delay_s": "seconds readiness is false on SIGTERM before the listeners close (default 0)",
    "request_read_timeout_s": "seconds a client has to send a whole request (default 30)",
    "max_connections": "connections one process serves at once; 503 above (default 2048)",
    "log_level": "critical, error, warning, info or debug",
    "log_format": "text (default) or json: one object per line with request and trace ids",
    "otlp_endpoint": "send OpenTelemetry traces over OTLP/gRPC to this URL (default: off)",
    "trace_sample_rate": "share of requests traced when no caller decided (default 1.0)",
    "prediction_log_uri": "log sampled requests as Parquet under this folder or URI (default: off)",
    "prediction_log_rate": "share of requests logged where model.yaml sets none (default 0.01)",
    "cache_redis_url": "Redis shared by replicas for model.yaml caches (default: none)",
    "artifact_root": "where uploaded artifacts go (default INFERD_HOME/artifacts)",
    "poll_interval_s": "seconds between registry and repository polls (default 1)",
    "alerts_file": "alert rules and receivers (alerts.yaml, docs/alerts.md; default: none)",
    "memory_budget_bytes": "memory all loaded versions may hold; LRU eviction above it",
    "readiness_max_queue_depth": "not ready while more requests than this wait (default: off)",
    "capacity_rps": "model=rps,...: one replica's capacity, for the desired-replicas hint",
    "device_memory_budget_bytes": "memory the versions on one GPU may hold there",
    "auth": "authentication: on, off or auto (default: off only on loopback with no keys)",
    "admin_key_file": "file holding a bootstrap admin API key (or INFERD_ADMIN_KEY)",
    "jwt_key_file": "accept JWTs signed by this PEM public key or HMAC secret file",
    "jwt_jwks_file": "accept JWTs signed by a key of this JWKS file",
    "jwt_audience": "the 'aud' a JWT must carry",
    "jwt_issuer": "the 'iss' a JWT must carry",
    "tls_certfile": "PEM certificate: serve HTTPS and gRPC over TLS",
    "tls_keyfile": "PEM private key of --tls-certfile",
    "tls_ca_file": "PEM CA bundle: require client certificates signed by it (mTLS)",
}
_INT_FLAGS = {
    "http_port", "grpc_port", "workers", "max_body_bytes", "memory_budget_bytes",
    "max_connections", "readiness_max_queue_depth",
    "device_memory_budget_bytes",
}  # fmt: skip
_FLOAT_FLAGS = {
    "graceful_timeout_s", "drain_delay_s", "poll_interval_s", "request_read_timeout_s",
    "trace_sample_rate", "prediction_log_rate",
}  # fmt: skip
_CHOICES = {"grpc_transport": ("grpcio", "native"), "log_format": ("text", "json")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferd", description="Model serving.")
    parser.add_argument("--version", action="version", version=f"inferd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model repository over HTTP")
    for field, text in _SERVE_FLAGS.items():
        kind: type = int if field in _INT_FLAGS else float if field in _FLOAT_FLAGS else str
        flag = "--" + field.replace("_", "-")
        serve.add_argument(flag, type=kind, choices=_CHOICES.get(field), help=text)
    serve.add_argument("--access-log", action="store_true", default=None, help="log each request")
    serve.add_argument(
        "--overload-control", action="store_true", default=None,
        help="adaptive concurrency limits and 503 shedding where model.yaml leaves it unset",
    )  # fmt: skip
    models.add_parser(commands)
    jobs.add_parser(commands)
    keys.add_parser(commands)
    experiments.add_parser(commands)
    rollouts.add_parser(commands)
    shadow.add_parser(commands)
    alerts.add_parser(commands)
    plan.add_parser(commands)
    return parser


def _export(settings: Settings) -> None:
    """Put the final settings in the environment the worker processes inherit."""
    for field, value in settings.model_dump().items():
        if value is not None:
            os.environ[f"INFERD_{field.upper()}"] = str(value)


def _prepare_metrics_dir(settings: Settings) -> None:
    # Several workers share metric values through files; start each run with none.
    if settings.workers > 1:
        path = settings.home / "metrics" / str(os.getpid())
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _tls(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS arguments: HTTPS with --tls-certfile, client certificates with a CA."""
    if settings.tls_certfile is None:
        return {}
    import ssl

    tls: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile),
    }  # fmt: skip
    if settings.tls_ca_file is not None:
        tls |= {"ssl_ca_certs": str(settings.tls_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return tls


def _log_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """uvicorn.run's ``log_config`` argument, left out for uvicorn's own default."""
    return {} if config is None else {"log_config": config}


WORKER_HEALTHCHECK_S = 30


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or Ctrl-C."""
    import uvicorn

    from inferd.api.app import repository_root
    from inferd.monitoring.logs import configure_logging, uvicorn_log_config
    from inferd.transport.http.protocol import InferdHttpProtocol

    overrides = {f: getattr(args, f) for f in (*_SERVE_FLAGS, "access_log", "overload_control")}
    settings = load_settings(**overrides)
    settings.home.mkdir(parents=True, exist_ok=True)
    if settings.alerts_file is not None:
        load_alerts(settings.alerts_file)  # a bad file stops here, naming the rule and field
    configure_logging(settings.log_format, "info")
    # Build the examples once here, not in N workers at the same time.
    repo = repository_root(settings)
    settings = settings.model_copy(update={"model_repository": repo})
    _export(settings)
    _prepare_metrics_dir(settings)
    scheme = "https" if settings.tls_certfile is not None else "http"
    logger.info("serving %s on %s://%s:%d", repo, scheme, settings.host, settings.http_port)
    uvicorn.run(
        "inferd.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.http_port,
        workers=settings.workers,
        loop="uvloop",
        http=InferdHttpProtocol,  # httptools, plus a deadline on reading each request
        lifespan="on",
        log_level=settings.log_level,
        **_log_config(uvicorn_log_config(settings.log_format)),
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        # uvicorn kills a worker that does not answer its supervisor's ping within this; its
        # 5 s default killed workers still importing runtimes and loading models on a busy
        # 2-core machine ("Child process died"), and a restarted worker starts over.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        timeout_keep_alive=30,
        limit_concurrency=settings.max_connections,
        backlog=4096,
        # No proxy header rewriting: it costs ~1% of CPU per request and nothing reads it yet.
        proxy_headers=False,
        # No "server: uvicorn" on every answer: it names the software to scanners, and each
        # header line costs uvicorn two regular-expression checks per response.
        server_header=False,
        **_tls(settings),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inferd`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "models":
            return models.run(args)
        if args.command == "jobs":
            return jobs.run(args)
        if args.command == "keys":
            return keys.run(args)
        if args.command == "experiments":
            return experiments.run(args)
        if args.command == "rollouts":
            return rollouts.run(args)
        if args.command == "shadow":
            return shadow.run(args)
        if args.command == "alerts":
            return alerts.run(args)
        if args.command == "plan":
            return plan.run(args)
    except InferdError as err:
        print(f"inferd: {err.message}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
