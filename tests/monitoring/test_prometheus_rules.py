"""deploy/prometheus: promtool checks and unit-tests the alerting and recording rules, and the
Prometheus rules stay the same rules as inferd's own deploy/alerts.yaml."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from fixtures.prometheus import require_binary

from inferd.monitoring.alerts_config import load_alerts, parse_duration

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus"


def _promtool(*args: str) -> str:
    done = subprocess.run([require_binary("promtool"), *args], capture_output=True, text=True,
                          timeout=60, cwd=RULES)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rule_files_pass_promtool_check() -> None:
    out = _promtool("check", "rules", "alerts.yml", "recording.yml")
    assert "SUCCESS: 6 rules found" in out
    assert "SUCCESS: 7 rules found" in out


def test_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "tests.yml")


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation fails promtool, so the test above proves something."""
    tests = yaml.safe_load((RULES / "tests.yml").read_text())
    tests["rule_files"] = [str(RULES / f) for f in tests["rule_files"]]
    tests["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 0.9
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    done = subprocess.run([require_binary("promtool"), "test", "rules", "tests.yml"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def test_prometheus_rules_mirror_inferd_rules() -> None:
    ours = {r.name: r for r in load_alerts(DEPLOY / "alerts.yaml").rules}
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    theirs = {r["alert"]: r for g in groups for r in g["rules"]}
    # Job failures live in the registry, not in a Prometheus series.
    assert set(theirs) == set(ours) - {"InferdBatchJobFailed"}
    for name, rule in theirs.items():
        assert rule["labels"]["severity"] == ours[name].severity, name
        assert parse_duration(rule.get("for", "0s")) == ours[name].for_s, name
    assert "> 0.5" in theirs["InferdHighP99Latency"]["expr"]
    assert ours["InferdHighP99Latency"].threshold == 0.5
    assert "> 0.05" in theirs["InferdHighErrorRate"]["expr"]
    assert ours["InferdHighErrorRate"].threshold == 0.05
    assert "> 100" in theirs["InferdQueueBacklog"]["expr"]
    assert ours["InferdQueueBacklog"].threshold == 100
