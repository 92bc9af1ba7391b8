"""Canary rollouts against a real `inferd serve --workers 2`: the controller (one lease holder
among the workers) steps a healthy candidate to promotion, and rolls a shifted one back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.servers import Server

from inferd.cli.main import main
from inferd.client import Client

pytestmark = pytest.mark.slow
BODY = {"model_name": "linear", "input_data": {"x": [1.0]}}
ARM_OF_Y = {3.0: "baseline", 4.0: "canary"}  # v1: 2x + 1, v2: 3x + 1


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(["rollouts", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def send(client: httpx.Client, n: int) -> list[tuple[float, str]]:
    """(time, arm) of ``n`` answers; a worker still starting answers 503: retried."""
    answers = []
    for _ in range(n):
        r = client.post("/predict", json=BODY)
        if r.status_code == 503:
            time.sleep(0.05)
            continue
        assert r.status_code == 200, r.text
        answers.append((time.monotonic(), ARM_OF_Y[r.json()["predictions"]["y"][0]]))
    return answers


def drive(client: httpx.Client, sdk: Client, rollout_id: str, until: set[str],
          timeout_s: float) -> list[tuple[float, str]]:  # fmt: skip
    """Send traffic until the rollout reaches a state in ``until``."""
    answers: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answers += send(client, 20)
        if sdk.get_rollout(rollout_id)["state"] in until:
            return answers
    raise AssertionError(f"rollout not {until} in {timeout_s} s: {sdk.get_rollout(rollout_id)}")


def test_healthy_canary_promoted_and_shifted_one_rolled_back(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Server(repo, tmp_path, workers=2) as server, Client(server.url) as sdk, httpx.Client(
        base_url=server.url, timeout=30
    ) as client:  # fmt: skip
        sdk.promote("linear", 1)
        # A shifted candidate (v2 answers 3x + 1): rolled back by the KS guardrail.
        shifted = sdk.create_rollout(
            {
                "model": "linear",
                "candidate": 2,
                "steps": [{"percent": 50}, {"percent": 100}],
                "guardrails": {"min_requests": 20, "max_p99_ratio": None},
            }
        )
        answers = drive(client, sdk, shifted["id"], {"rolled_back"}, timeout_s=60)
        canary = [t for t, arm in answers if arm == "canary"]
        assert canary, "the canary never served"
        time.sleep(2.0)  # every worker re-reads routing within its poll interval (1 s)
        after = send(client, 40)
        assert {arm for _, arm in after} == {"baseline"}
        # Canary traffic ended within 30 s of its first answer (5 s flushes, 5 s ticks, 1 s polls).
        assert canary[-1] - canary[0] <= 30.0
        status = cli(capsys, "status", shifted["id"], "--url", server.url)
        assert status["state"] == "rolled_back"
        assert "prediction distribution shifted" in status["reason"]
        # The same candidate with the shift check off goes 50 -> 100 -> promoted.
        created = cli(capsys, "create", "--url", server.url, "--model", "linear",
                      "--candidate", "2", "--steps", "50,100", "--step-duration-s", "1",
                      "--step-requests", "10")  # fmt: skip
        rid = created["id"]
        sdk.rollout_action(rid, "abort")  # the CLI made one with the defaults: redo it
        assert sdk.get_rollout(rid)["state"] == "aborted"
        healthy = sdk.create_rollout({"model": "linear", "candidate": 2,
                                      "steps": [{"percent": 50, "min_duration_s": 1,
                                                 "min_requests": 10},
                                                {"percent": 100, "min_duration_s": 1,
                                                 "min_requests": 10}],
                                      "guardrails": {"min_requests": 20, "max_p99_ratio": None,
                                                     "max_prediction_ks": None}})  # fmt: skip
        drive(client, sdk, healthy["id"], {"completed"}, timeout_s=90)
        assert sdk.get_model("linear")["production_version"] == 2
        listed = cli(capsys, "list", "--url", server.url, "--model", "linear")
        assert [r["state"] for r in listed] == ["completed", "aborted", "rolled_back"]


def test_a_killed_server_restarted_on_the_same_registry_resumes_the_rollout(
    repo: Path, tmp_path: Path
) -> None:
    steps = [{"percent": 50, "min_duration_s": 1, "min_requests": 10},
             {"percent": 100, "min_duration_s": 20, "min_requests": 10}]  # fmt: skip
    rules = {"min_requests": 20, "max_p99_ratio": None, "max_prediction_ks": None}
    first = Server(repo, tmp_path)
    try:
        first.wait_ready()
        with Client(first.url) as sdk, httpx.Client(base_url=first.url, timeout=30) as client:
            sdk.promote("linear", 1)
            rid = sdk.create_rollout({"model": "linear", "candidate": 2, "steps": steps,
                                      "guardrails": rules})["id"]  # fmt: skip
            deadline = time.monotonic() + 60
            while sdk.get_rollout(rid)["step"] < 1:
                assert time.monotonic() < deadline, sdk.get_rollout(rid)
                send(client, 20)
            before = sdk.get_rollout(rid)
    finally:
        first.proc.kill()  # no clean shutdown: the lease is left to run out
        first.proc.wait()
        first.log.close()
    with Server(repo, tmp_path) as second, Client(second.url) as sdk, httpx.Client(
        base_url=second.url, timeout=30
    ) as client:  # fmt: skip
        assert sdk.get_rollout(rid)["state"] == "running"
        drive(client, sdk, rid, {"completed"}, timeout_s=90)
        after = sdk.get_rollout(rid)
        assert after["step_started_at"] == before["step_started_at"]  # the step went on
        assert [h["event"] for h in after["history"]] == [
            "created", "started", "advanced", "completed"
        ]  # fmt: skip
        assert sdk.get_model("linear")["production_version"] == 2
