"""inferd's own evaluator in a real `inferd serve --workers 2`: a model that takes 600 ms
against a 500 ms p99 rule fires within 30 s, one webhook call per receiver (JSON and Slack),
and the alert reads back through `inferd alerts list --json` and the SDK."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from fixtures.prometheus import Webhook
from fixtures.servers import Server

from inferd.cli.main import main
from inferd.client import Client

SLOW_MODEL = '''\
"""y = x, 600 ms per call: an injected latency."""

import time

from inferd.runtimes.python import PythonModel


class Slow(PythonModel):
    def infer(self, inputs):
        time.sleep(0.6)
        return {"y": inputs["x"]}
'''
MODEL_YAML = """\
platform: python
max_batch_size: 1
inputs: [{name: x, datatype: FP32, shape: [-1]}]
outputs: [{name: y, datatype: FP32, shape: [-1]}]
"""
ALERTS = """\
evaluation_interval: 1s
receivers:
  - {{name: ops, url: "{hook}", backoff: 200ms}}
  - {{name: chat, kind: slack, url: "{hook}"}}
rules:
  - {{name: SlowP99, kind: latency_p99, threshold: 500ms, window: 10s, for: 2s,
     severity: critical}}
"""
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


def _repo(root: Path) -> Path:
    (root / "slow" / "1").mkdir(parents=True)
    (root / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    (root / "slow" / "model.yaml").write_text(MODEL_YAML)
    return root


def _load(url: str, stop: threading.Event, failures: list[str]) -> None:
    """Requests one after another until ``stop``; a worker still loading (503) is retried."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            r = client.post(f"{url}/v2/models/slow/infer", json=BODY)
            if r.status_code == 503 and "not ready" in r.text:
                stop.wait(0.1)
            elif r.status_code != 200:
                failures.append(r.text)


def test_600ms_latency_fires_a_500ms_rule_within_30s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    with Webhook() as hook:
        rules = tmp_path / "alerts.yaml"
        rules.write_text(ALERTS.format(hook=hook.url))
        with Server(repo, home, workers=2, extra=["--alerts-file", str(rules)]) as server:
            stop, failures = threading.Event(), []
            loaders = [threading.Thread(target=_load, args=(server.url, stop, failures))
                       for _ in range(2)]  # fmt: skip
            start = time.monotonic()
            for t in loaders:
                t.start()
            try:
                fired = hook.wait_for(lambda b: b.get("status") == "firing", 30)
            finally:
                stop.set()
                for t in loaders:
                    t.join()
            assert time.monotonic() - start < 30
            assert failures == []
            [alert] = fired["alerts"]
            assert alert["rule"] == "SlowP99"
            assert alert["labels"] == {"alertname": "SlowP99", "model": "slow", "version": "1"}
            assert alert["value"] > 0.5  # 600 ms each, plus queueing behind one another
            hook.wait_for(lambda b: "SlowP99" in b.get("text", ""), 10)  # the Slack one
            assert sum("alerts" in b for b in hook.bodies) == 1  # deduplicated across workers
            assert main(["alerts", "list", "--json", "--url", server.url]) == 0
            listed = json.loads(capsys.readouterr().out)
            assert [(a["rule"], a["state"]) for a in listed["active"]] == [("SlowP99", "firing")]
            with Client(server.url) as client:
                assert client.list_alerts(rule="SlowP99")["history"][0]["state"] == "firing"
