"""JSON log lines: one object per line, with the current request's ids."""

from __future__ import annotations

import io
import logging

import numpy as np
import orjson
import pytest
from fixtures.runtimes import AffineRuntime
from opentelemetry.sdk.trace import TracerProvider

from inferd.batching import Batcher, BatchPolicy
from inferd.errors import InferenceFailed
from inferd.monitoring.logs import JsonFormatter, configure_logging
from inferd.monitoring.tracing import Tracing

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_json_log_lines_carry_the_request_and_trace_ids() -> None:
    t = Tracing(TracerProvider())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("inferd.test_tracing")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside %s", "any request")
        with t.request("req", PARENT) as trace:
            trace.annotate("r-42", "linear", None)
            log.warning("inside")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["outside any request", "inside", "failed"]
    assert (lines[0]["request_id"], lines[0]["trace_id"]) == (None, None)
    assert all((d["request_id"], d["trace_id"]) == ("r-42", PARENT_TRACE) for d in lines[1:])
    assert lines[1]["level"] == "warning"
    assert lines[1]["logger"] == "inferd.test_tracing"
    assert lines[1]["timestamp"].endswith("+00:00")
    assert "ValueError: boom" in lines[2]["exception"]


def test_an_unknown_log_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"log_format: expected .*, got 'xml'"):
        configure_logging("xml", "info")


async def test_a_failed_batch_logs_under_no_single_requests_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("inferd.batching.batcher")
    log.addHandler(handler)
    batcher = Batcher(AffineRuntime(poison=9.0), BatchPolicy(), model="m", version="1")
    try:
        trace = Tracing(None, log_ids=True).request("req", PARENT, request_id="mine")
        with trace, pytest.raises(InferenceFailed):
            await batcher.submit({"x": np.array([9.0], dtype=np.float32)})
    finally:
        log.removeHandler(handler)
        await batcher.close()
    (line,) = [orjson.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "model m version 1: batch of 1 requests failed"
    assert (line["request_id"], line["trace_id"]) == (None, None)
    assert "poisoned batch" in line["exception"]
