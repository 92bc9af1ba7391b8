"""Checks on the values the registry stores: model and version fields, and stages.

Every write path (the `/v1` API, the CLI, the repository import) goes through the store, so
the checks live here once: a field of the wrong type is refused with a message naming it,
never written (a `null` config would leave the model unloadable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferd.config import parse_model_config
from inferd.errors import InvalidInput
from inferd.registry.gates import parse_gate
from inferd.registry.records import Stage

MODEL_FIELDS = ("description", "tags", "config", "gates")
METADATA_FIELDS = ("metrics", "tags", "description", "training", "signature", "pinned")
# Field -> (accepted Python types, what an error says was expected); lists hold strings.
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "metrics": ((dict,), "a mapping of name to number"),
    "tags": ((list,), "a list of strings"),
    "gates": ((list,), "a list of rules like 'accuracy >= 0.85'"),
    "description": ((str,), "a string"),
    "training": ((dict,), "a mapping"),
    "signature": ((dict, type(None)), "a mapping or null"),
    "pinned": ((bool,), "true or false"),
    "config": ((dict,), "a model config mapping (model.yaml as JSON)"),
}


def parse_stage(value: str) -> Stage:
    """Raises InvalidInput for an unknown stage name."""
    try:
        return Stage(value)
    except ValueError:
        raise InvalidInput("stage", f"one of {[s.value for s in Stage]}", repr(value)) from None


def model_fields(name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Checked changes of a model: known fields, their types, gate rules, a loadable config.

    Raises:
        InvalidInput: an unknown field, a wrong type or a malformed gate.
        ConfigError: a config that could not be loaded (refused now, not at load).
    """
    unknown = set(changes) - set(MODEL_FIELDS)
    if unknown:
        raise InvalidInput("model fields", f"some of {sorted(MODEL_FIELDS)}", str(sorted(unknown)))
    _check_types("model", changes)
    for rule in changes.get("gates") or []:
        parse_gate(rule)
    if "config" in changes:
        parse_model_config(changes["config"], f"model '{name}' config", name)
    return dict(changes)


def metadata_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Checked version metadata, metrics as floats.

    Raises:
        InvalidInput: an unknown key, a wrong type, or a metric that is not a number.
    """
    unknown = set(metadata) - set(METADATA_FIELDS)
    if unknown:
        raise InvalidInput("metadata", f"keys among {list(METADATA_FIELDS)}", str(sorted(unknown)))
    _check_types("metadata", metadata)
    fields = dict(metadata)
    metrics = fields.get("metrics")
    if metrics is not None:
        try:
            fields["metrics"] = {str(k): float(v) for k, v in metrics.items()}
        except (TypeError, ValueError) as err:
            raise InvalidInput("metadata.metrics", "numbers", str(metrics)) from err
    return fields


def _check_types(prefix: str, fields: Mapping[str, Any]) -> None:
    """Each present field has its column's type (None only where the column takes it)."""
    for name, value in fields.items():
        kinds, expected = _FIELD_TYPES[name]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if ok and isinstance(value, list):
            ok = all(isinstance(item, str) for item in value)
        if not ok:
            raise InvalidInput(f"{prefix}.{name}", expected, type(value).__name__)
