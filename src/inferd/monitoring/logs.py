"""Log output: plain text (the default) or one JSON object per line (``--log-format json``).

A JSON line carries ``timestamp`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
``message``, ``request_id`` and ``trace_id`` (null outside a request, and ``trace_id`` null
with tracing off), plus ``exception`` when there is one. The ids come from the request's
:class:`~inferd.monitoring.tracing.RequestTrace`, a context variable the transports set while
they serve an inference request, so every line logged on its behalf (uvicorn's access log
line included) names it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from inferd.monitoring.tracing import current_trace

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON with the current request's ids."""

    def format(self, record: logging.LogRecord) -> str:
        trace = current_trace()
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": trace.request_id if trace is not None else None,
            "trace_id": (trace.trace_id or None) if trace is not None else None,
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument orjson cannot encode must not lose the line.
        return orjson.dumps(doc, default=str).decode()


def configure_logging(log_format: str, level: str) -> None:
    """Set up the root logger of this process for ``log_format`` (text or json).

    Text keeps whatever handler is already there (the CLI's); JSON replaces it, so that no
    line goes out in two shapes.

    Raises:
        ValueError: ``log_format`` is neither text nor json.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format: expected one of {LOG_FORMATS}, got {log_format!r}")
    if log_format == "text":
        logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``log_format``: None keeps uvicorn's own (text)."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }
