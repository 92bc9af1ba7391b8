"""Request parts the ``/v1`` routes share: JSON object bodies and checked query values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from inferd.errors import InvalidInput

MAX_LIMIT = 10_000


def json_object(
    raw: bytes, *, required: bool = False, expected: str = "a JSON object"
) -> dict[str, Any]:
    """The body as a JSON object; ``{}`` for an empty body unless ``required``.

    Raises:
        InvalidInput: not JSON, not an object, or empty when required.
    """
    if not raw.strip():
        if required:
            raise InvalidInput("body", expected, "nothing")
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise InvalidInput("body", expected, f"invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InvalidInput("body", expected, type(data).__name__)
    return data


def optional_text(data: dict[str, Any], name: str) -> str | None:
    """A JSON body's optional string field. Raises InvalidInput naming ``body.<name>``."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"body.{name}", "a string", repr(value)[:80])
    return value


def query_limit(query: dict[str, str], default: int = 100) -> int:
    """``?limit=``: 1 to :data:`MAX_LIMIT`. Raises InvalidInput otherwise."""
    text = query.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidInput("limit", f"an integer from 1 to {MAX_LIMIT}", repr(text)[:40])
    return int(text)


def query_choice(query: dict[str, str], name: str, choices: Iterable[str]) -> str | None:
    """An optional query value that must be one of ``choices``."""
    value = query.get(name)
    allowed = list(choices)
    if value is not None and value not in allowed:
        raise InvalidInput(name, " or ".join(allowed), repr(value)[:40])
    return value


def query_flag(query: dict[str, str], name: str) -> bool:
    """An optional boolean query value: true/false (also 1/0, yes/no); absent is false."""
    value = query.get(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise InvalidInput(name, "true or false", repr(value)[:40])
    return lowered in ("true", "1", "yes")
