"""Fault: a model raises on 10% of its inputs while batches of several requests run.

Exactly the requests that carry a bad input fail, with a 500 naming the model and the
error; the requests that shared a batch with one still get their answers (the batcher runs a
failed batch's requests again one by one); the metrics count the failures.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fixtures.load import Load, http_infer
from fixtures.models import write_python_model, xy_yaml
from fixtures.servers import Server

THREADS = 8
MODEL_YAML = xy_yaml("python", 16, "batching: {max_queue_delay_ms: 5}")
MODEL_PY = """\
import time

from inferd.runtimes.python import PythonModel


class Picky(PythonModel):
    def infer(self, inputs):
        time.sleep(0.002)  # long enough for the next requests to queue up behind a batch
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2 + 1}
"""


def _input(number: int) -> list[float]:
    return [-1.0] if number % 10 == 0 else [float(number)]


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_only_the_bad_inputs_fail_and_their_batch_mates_succeed(repo: Path, tmp_path: Path) -> None:
    write_python_model(repo, "picky", MODEL_PY, MODEL_YAML)
    server = Server(repo, tmp_path)
    try:
        server.wait_ready()
        load = Load(lambda: http_infer(server.url, "picky", _input), THREADS, pause_s=0.005).start()
        load.wait_for(lambda t: t.sent >= 300)
        tally = load.stop()
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:  # not Server.__exit__: a failed batch logs its traceback
        server.stop()
    bad = {n for n in range(tally.sent) if n % 10 == 0}
    assert set(tally.failures) == bad, tally.summary()
    assert tally.failed == {500: len(bad)}, tally.summary()
    assert tally.ok == tally.sent - len(bad), tally.summary()
    for _, text in tally.failures.values():
        assert "model 'picky' version 1: inference failed: ValueError: negative input" in text
    labels = {"model": "picky", "version": "1"}
    assert _metric(metrics, "inferd_requests_total", code="500", **labels) == len(bad)
    assert _metric(metrics, "inferd_requests_total", code="200", **labels) == tally.ok
    # Requests did share batches: fewer runtime calls than requests answered.
    assert _metric(metrics, "inferd_batch_size_count", **labels) < tally.sent
