"""Promotion gates: per-model rules on a version's metrics, e.g. ``accuracy >= 0.85``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping

from inferd.errors import InvalidInput

_RULE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*(-?[\d.]+(?:[eE]-?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


def parse_gate(rule: str) -> tuple[str, str, float]:
    """Split ``metric op number``.

    Raises:
        InvalidInput: the rule is not of that form.
    """
    match = _RULE.match(rule)
    if match is None:
        raise InvalidInput("gates", "rules like 'accuracy >= 0.85'", repr(rule))
    return match.group(1), match.group(2), float(match.group(3))


def failed_gates(rules: list[str], metrics: Mapping[str, float]) -> list[str]:
    """The rules a version's metrics do not satisfy, each with the reason."""
    failures: list[str] = []
    for rule in rules:
        metric, op, bound = parse_gate(rule)
        value = metrics.get(metric)
        if value is None:
            failures.append(f"'{rule}': the version has no metric '{metric}'")
        elif not _OPS[op](float(value), bound):
            failures.append(f"'{rule}': {metric} is {value}")
    return failures
