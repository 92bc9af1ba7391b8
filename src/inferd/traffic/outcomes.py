"""Outcomes posted to an experiment: parsed, checked and attached to their variant.

An outcome names a request (``request_id``) or a unit (``unit_id``) and carries one of:

    {"unit_id": "u-17", "kind": "conversion", "value": 1}      # 0 or 1
    {"request_id": "r-9", "kind": "value", "value": 12.5}      # any finite number
    {"request_id": "r-9", "kind": "label", "label": "cat"}     # a ground-truth label

A unit's variant is the router's (the experiment's table is a pure function of its salt and
weights). A request's variant comes from the exposure log: this process's unflushed buffer,
then the registry; a request not logged yet is stored without a variant and joined when the
results are computed, so posting an outcome right after the response loses nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from inferd.errors import InvalidInput
from inferd.traffic.router import Splitter
from inferd.traffic.store import ExperimentRecord, Outcome

MAX_BATCH = 10_000
KINDS = ("conversion", "value", "label")
Lookup = Callable[[list[str]], dict[str, str]]


def _text(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise InvalidInput(where, "a non-empty string", repr(value)[:80])
    if len(str(value)) > 200:
        raise InvalidInput(where, "at most 200 characters", f"{len(str(value))} characters")
    return str(value)


def parse_outcome(where: str, item: Any) -> Outcome:
    """One outcome object, its variant still unknown.

    Raises:
        InvalidInput: naming the field (e.g. ``outcomes[3].value``).
    """
    if not isinstance(item, dict):
        raise InvalidInput(where, "an object with request_id or unit_id and kind", repr(item)[:80])
    unknown = set(item) - {"request_id", "unit_id", "kind", "value", "label"}
    if unknown:
        raise InvalidInput(where, "request_id, unit_id, kind, value, label", f"{sorted(unknown)}")
    request_id = _text(f"{where}.request_id", item.get("request_id"))
    unit = _text(f"{where}.unit_id", item.get("unit_id"))
    if (request_id is None) == (unit is None):
        raise InvalidInput(
            where, "exactly one of request_id and unit_id", "both" if unit else "neither"
        )
    kind = item.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{where}.kind", " | ".join(KINDS), repr(kind)[:80])
    value, label = item.get("value"), item.get("label")
    if kind == "label":
        return Outcome(kind, None, request_id, unit, None, _text(f"{where}.label", label))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{where}.value", "a finite number", repr(value)[:80])
    if kind == "conversion" and value not in (0, 1):
        raise InvalidInput(f"{where}.value", "0 or 1 for a conversion", repr(value))
    return Outcome(kind, None, request_id, unit, float(value), None)


def parse_outcomes(body: Any) -> list[Outcome]:
    """``{"outcomes": [...]}``, a list, or one outcome object."""
    if isinstance(body, dict) and "outcomes" in body:
        items, where = body["outcomes"], "outcomes"
    elif isinstance(body, list):
        items, where = body, "body"
    else:
        return [parse_outcome("body", body)]
    if not isinstance(items, list) or not items:
        raise InvalidInput(where, "a non-empty list of outcomes", repr(items)[:80])
    if len(items) > MAX_BATCH:
        raise InvalidInput(where, f"at most {MAX_BATCH} outcomes per call", str(len(items)))
    return [parse_outcome(f"{where}[{i}]", item) for i, item in enumerate(items)]


def attach_variants(record: ExperimentRecord, outcomes: Iterable[Outcome], *lookups: Lookup) -> int:
    """Set each outcome's variant; returns how many are still unknown (joined later).

    Args:
        record: the experiment.
        outcomes: parsed outcomes.
        lookups: request id -> variant finders, tried in order (memory first, then registry).
    """
    outcomes = list(outcomes)
    splitter = Splitter(record.salt, record.spec.variant_names, record.weights)
    for outcome in outcomes:
        if outcome.unit is not None:
            outcome.variant = splitter.variant(outcome.unit)
    for lookup in lookups:
        missing = [o for o in outcomes if o.variant is None and o.request_id is not None]
        if not missing:
            break
        found = lookup([o.request_id for o in missing if o.request_id is not None])
        for outcome in missing:
            outcome.variant = found.get(outcome.request_id or "")
    return sum(1 for o in outcomes if o.variant is None)
