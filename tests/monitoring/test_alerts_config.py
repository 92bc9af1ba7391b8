"""alerts.yaml: durations, defaults, and errors that name the rule, field, expectation and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferd.errors import ConfigError
from inferd.monitoring.alerts_config import load_alerts, parse_alerts, parse_duration

EXAMPLE = Path(__file__).parents[2] / "deploy" / "alerts.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), (2, 2.0)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_the_shipped_example_is_valid() -> None:
    config = load_alerts(EXAMPLE)
    kinds = {r.kind for r in config.rules}
    assert kinds == {"latency_p99", "error_rate", "queue_depth", "drift", "canary_breach",
                     "load_failure", "job_failure"}  # fmt: skip
    latency = next(r for r in config.rules if r.kind == "latency_p99")
    assert latency.threshold == 0.5


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "latency_p99", "threshold": "500ms", "for": "soon"},
         "field 'rules[0] (R).for': expected a duration such as 500ms, 30s, 5m or 1h (or a "
         "number of seconds), got 'soon'"),
        ({"kind": "latency_p99"}, "field 'rules[0] (R).threshold': expected a value for a "
         "latency_p99 rule, got none"),
        ({"kind": "error_rate", "threshold": 5}, "field 'rules[0] (R).threshold': expected a "
         "share from 0 to 1, got 5.0"),
        ({"kind": "p50"}, "field 'rules[0] (R).kind': expected 'latency_p99', 'error_rate', "
         "'queue_depth', 'load_failure', 'drift', 'canary_breach' or 'job_failure', got 'p50'"),
        ({"kind": "drift", "treshold": 1}, "field 'rules[0] (R).treshold': unknown field"),
        ({"kind": "drift", "receivers": ["pager"]}, "field 'rules[0] (R).receivers': expected "
         "one of [], got 'pager'"),
    ],
)  # fmt: skip
def test_errors_name_rule_field_expected_and_got(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_alerts({"rules": [{"name": "R", **rule}]}, "a.yaml")
    assert caught.value.message.startswith("a.yaml: ")
    assert message in caught.value.message


def test_receiver_errors_and_duplicates() -> None:
    with pytest.raises(ConfigError, match=r"receivers\[0\] \(x\)\.url': expected text matching"):
        parse_alerts({"receivers": [{"name": "x", "url": "ftp://a"}]})
    twice = {"rules": [{"name": "R", "kind": "drift"}, {"name": "R", "kind": "drift"}]}
    with pytest.raises(ConfigError, match=r"rules\[1\] \(R\)\.name': expected a unique name"):
        parse_alerts(twice)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the alerts file"):
        load_alerts(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(ConfigError, match="expected YAML"):
        load_alerts(bad)
    bad.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top, got list"):
        load_alerts(bad)
