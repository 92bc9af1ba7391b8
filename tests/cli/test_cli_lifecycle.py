"""The request each `inferd experiments` / `inferd rollouts` subcommand makes."""

from __future__ import annotations

import argparse
import json
from types import ModuleType
from typing import Any

import pytest

from inferd.cli import _lifecycle, experiments, rollouts, shadow


def parse(module: ModuleType, command: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args([command, *argv])


class Backend:
    """Stands in for the server: records the request, answers a canned record."""

    calls: list[tuple[str, str, Any, Any]] = []

    def __init__(self, url: str, api_key: str | None = None, hint: str = "") -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None, query: Any = None) -> Any:
        Backend.calls.append((method, path, body, query))
        return {"answer": path}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any, Any]]:
    monkeypatch.setattr(_lifecycle, "HttpBackend", Backend)
    Backend.calls = []
    return Backend.calls


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list", "--model", "m"], ("GET", "/v1/rollouts", None, {"model": "m", "state": None})),
        (["show", "ro-1"], ("GET", "/v1/rollouts/ro-1", None, None)),
        (["status", "ro-1"], ("GET", "/v1/rollouts/ro-1/status", None, None)),
        (["advance", "ro-1"], ("POST", "/v1/rollouts/ro-1/advance", {}, None)),
        (["abort", "ro-1", "--reason", "bad"],
         ("POST", "/v1/rollouts/ro-1/abort", {"reason": "bad"}, None)),
        (["create", "--model", "m", "--candidate", "2"],
         ("POST", "/v1/rollouts", {"model": "m", "candidate": 2}, None)),
    ],
)  # fmt: skip
def test_rollout_subcommands(
    sent: list[Any], capsys: pytest.CaptureFixture[str], argv: list[str], expected: Any
) -> None:
    assert rollouts.run(parse(rollouts, "rollouts", *argv, "--json")) == 0
    assert sent == [expected]
    assert json.loads(capsys.readouterr().out) == {"answer": expected[1]}


E1 = "/v1/experiments/e-1"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["results", "e-1"], ("GET", f"{E1}/results", None, None)),
        (["list", "--state", "running"],
         ("GET", "/v1/experiments", None, {"model": None, "state": "running"})),
        (["outcome", "e-1", "--unit", "u", "--conversion", "1"],
         ("POST", f"{E1}/outcomes",
          {"outcomes": [{"unit_id": "u", "kind": "conversion", "value": 1}]}, None)),
        (["start", "e-1"], ("POST", f"{E1}/start", {}, None)),
        (["stop", "e-1", "--reason", "r"], ("POST", f"{E1}/stop", {"reason": "r"}, None)),
        (["conclude", "e-1", "--winner", "b"],
         ("POST", f"{E1}/conclude", {"winner": "b", "reason": ""}, None)),
        (["weights", "e-1", "0.5", "0.5"],
         ("POST", f"{E1}/weights", {"weights": [0.5, 0.5]}, None)),
    ],
)  # fmt: skip
def test_experiment_subcommands(sent: list[Any], argv: list[str], expected: Any) -> None:
    assert experiments.run(parse(experiments, "experiments", *argv, "--json")) == 0
    assert sent == [expected]


def test_every_command_takes_the_server_flags() -> None:
    for module, argv in ((rollouts, ["rollouts", "show", "x"]),
                         (experiments, ["experiments", "show", "x"]),
                         (shadow, ["shadow", "show", "m"])):  # fmt: skip
        args = parse(module, argv[0], *argv[1:], "--url", "http://h:1", "--json")
        assert (args.url, args.json) == ("http://h:1", True)
