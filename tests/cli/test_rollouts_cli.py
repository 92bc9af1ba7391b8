"""`inferd rollouts`: flags to a spec, and the plain-text status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from inferd.cli import rollouts
from inferd.errors import InvalidInput
from inferd.traffic.rollout_spec import parse_rollout_spec


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    rollouts.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["rollouts", *argv])


def test_flags_make_a_valid_spec_and_override_the_file(tmp_path: Path) -> None:
    file = tmp_path / "spec.json"
    file.write_text(json.dumps({"model": "linear", "candidate": 3, "name": "from file",
                                "guardrails": {"max_error_rate": 0.01}}))  # fmt: skip
    args = parse("create", "--file", str(file), "--candidate", "2", "--steps", "10,100",
                 "--step-duration-s", "60", "--step-requests", "500", "--unit", "user_id",
                 "--no-promote")  # fmt: skip
    spec = parse_rollout_spec(rollouts.spec_from_args(args))
    assert (spec.model, spec.candidate, spec.name, spec.promote) == (
        "linear", 2, "from file", False)  # fmt: skip
    assert [(s.percent, s.min_duration_s, s.min_requests) for s in spec.steps] == [
        (10, 60, 500), (100, 60, 500)]  # fmt: skip
    assert spec.guardrails.max_error_rate == 0.01
    assert spec.unit is not None
    assert spec.unit.kind == "user_id"
    # Durations alone apply to the default steps.
    only = rollouts.spec_from_args(parse("create", "--model", "m", "--candidate", "2",
                                         "--step-duration-s", "5"))  # fmt: skip
    assert [s["percent"] for s in only["steps"]] == [1, 5, 25, 50, 100]
    assert {s["min_duration_s"] for s in only["steps"]} == {5}
    with pytest.raises(InvalidInput, match="--steps"):
        rollouts.spec_from_args(parse("create", "--model", "m", "--steps", "1,five"))


def test_status_text_names_breaches_and_the_next_move() -> None:
    arm = {"requests": 90, "errors": 14, "error_rate": 0.16, "latency_mean_ms": 3.0,
           "latency_p99_ms": 7.5, "prediction_mean": 4.0, "predictions_sampled": 76}  # fmt: skip
    status = {
        "rollout": "ro-1", "model": "linear", "state": "rolled_back", "step": 0, "steps": 5,
        "percent": 0.0, "arms": {"baseline": {**arm, "errors": 0}, "canary": arm},
        "guardrails": {"ok": False, "breaches": [{"message": "canary error rate 15.56%"}]},
        "next": {"action": "hold", "wait_s": 0.0, "requests_needed": 0},
        "reason": "canary error rate 15.56%", "breach": None,
    }  # fmt: skip
    text = rollouts.status_text(status)
    assert "ro-1 (rolled_back) on linear: step 1/5 at 0%" in text
    assert "canary    90 requests, 14 errors, p99 7.5 ms" in text
    assert "BREACH canary error rate 15.56%" in text
