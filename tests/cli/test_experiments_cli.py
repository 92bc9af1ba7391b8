"""`inferd experiments`: flags to a spec, and the plain-text results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from inferd.cli import experiments
from inferd.errors import InvalidInput
from inferd.traffic.results import compute
from inferd.traffic.spec import parse_spec
from inferd.traffic.store import ExperimentRecord, OutcomeTotals


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    experiments.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["experiments", *argv])


def test_flags_make_a_valid_spec_and_override_the_file(tmp_path: Path) -> None:
    file = tmp_path / "spec.json"
    file.write_text(json.dumps({"model": "linear", "alpha": 0.01, "name": "from file"}))
    args = parse("create", "--file", str(file), "--variant", "control=1:0.7",
                 "--variant", "treatment=2:0.3", "--unit", "header", "--unit-key", "x-user",
                 "--metric", "value", "--alpha", "0.02")  # fmt: skip
    spec = parse_spec(experiments.spec_from_args(args))
    assert (spec.model, spec.name, spec.alpha, spec.primary_metric) == (
        "linear", "from file", 0.02, "value")  # fmt: skip
    assert (spec.unit.kind, spec.unit.key) == ("header", "x-user")
    assert [(v.name, v.version, v.weight) for v in spec.variants] == [
        ("control", 1, 0.7), ("treatment", 2, 0.3)]  # fmt: skip
    with pytest.raises(InvalidInput, match="NAME=VERSION:WEIGHT"):
        experiments.parse_variant("control=one:0.5")


def test_results_text_names_the_verdicts() -> None:
    spec = parse_spec(
        {
            "name": "e",
            "model": "m",
            "variants": [
                {"name": "a", "version": 1, "weight": 0.5},
                {"name": "b", "version": 2, "weight": 0.5},
            ],
        }
    )
    record = ExperimentRecord("exp-1", "e", "m", "running", spec, [[0.5, 0.5]], "s")
    totals = {("a", "conversion"): OutcomeTotals(2000, 200, 200),
              ("b", "conversion"): OutcomeTotals(2000, 300, 300)}  # fmt: skip
    text = experiments.results_text(compute(record, {}, totals, 0))
    assert "conversion (primary): a 0.1 (n=2000), b 0.15 (n=2000)" in text
    assert "b vs a: 0.05 [" in text
    assert "significant" in text
    assert "sample size 1000 per variant: reached" in text
