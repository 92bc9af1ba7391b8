"""Experiment specs: defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from inferd.errors import InvalidInput
from inferd.traffic.spec import parse_spec


def spec(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "e",
        "model": "m",
        "variants": [
            {"name": "a", "version": 1, "weight": 0.5},
            {"name": "b", "version": 2, "weight": 0.5},
        ],
    }
    body.update(changes)
    return body


def test_defaults() -> None:
    parsed = parse_spec(spec())
    assert parsed.unit.kind == "user_id"
    assert parsed.fallback_index() == 0
    assert parsed.primary_metric == "conversion"
    assert parsed.guard_metrics == ["error_rate", "latency_ms"]
    assert (parsed.alpha, parsed.power, parsed.correction) == (0.05, 0.8, "holm")
    assert parse_spec(spec(fallback="b")).fallback_index() == 1
    assert parse_spec(spec(fallback="exclude")).fallback_index() is None


def test_weights_that_do_not_sum_to_one_are_refused_with_the_sum() -> None:
    variants = [{"name": "a", "version": 1, "weight": 0.7}, {"name": "b", "version": 2,
                                                            "weight": 0.2}]  # fmt: skip
    with pytest.raises(InvalidInput, match=r"experiment\.variants\.weight.*sum 0\.9"):
        parse_spec(spec(variants=variants))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"variants": [{"name": "a", "version": 1, "weight": 1.0}]}, "experiment.variants"),
        ({"variants": [{"name": "a", "version": 0, "weight": 0.5},
                       {"name": "b", "version": 1, "weight": 0.5}]},
         r"experiment\.variants\[0\]\.version"),
        ({"unit": {"kind": "header"}}, r"experiment\.unit"),
        ({"unit": {"kind": "cookie"}}, r"experiment\.unit\.kind"),
        ({"fallback": "random"}, "fallback must be"),
        ({"alpha": 0.7}, r"experiment\.alpha"),
        ({"correction": "bonferroni"}, r"experiment\.correction"),
        ({"primary_metric": "clicks"}, r"experiment\.primary_metric"),
        ({"surprise": 1}, r"experiment\.surprise"),
        ({"model": ""}, r"experiment\.model"),
    ],
)  # fmt: skip
def test_bad_fields_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_spec(spec(**changes))


def test_duplicate_variant_names_are_refused() -> None:
    variants = [{"name": "a", "version": 1, "weight": 0.5}, {"name": "a", "version": 2,
                                                            "weight": 0.5}]  # fmt: skip
    with pytest.raises(InvalidInput, match="unique"):
        parse_spec(spec(variants=variants))
    with pytest.raises(InvalidInput, match="a JSON object"):
        parse_spec([1])
