"""Request traces, the batcher's queue/batch/runtime spans and JSON log lines, in-process.

Spans go to the OpenTelemetry SDK's in-memory exporter; the end-to-end path through a real
server and a real OTLP receiver is in test_tracing_process.py.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from fixtures.runtimes import AffineRuntime
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import SpanKind, StatusCode

from inferd.api.app import build_app
from inferd.batching import Batcher, BatchPolicy
from inferd.errors import ConfigError, InferenceFailed
from inferd.monitoring.tracing import Tracing, current_trace, tracing_from_settings
from inferd.settings import Settings

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


def tracing(
    sampler: Sampler = ALWAYS_ON, sample_rate: float = 1.0
) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(sampler))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider, sample_rate=sample_rate), exporter


def x(value: float) -> dict[str, np.ndarray]:
    return {"x": np.array([value], dtype=np.float32)}


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def traced_submit(t: Tracing, batcher: Batcher, value: float) -> int:
    """Submit one request inside its own trace; returns the request span's id."""
    with t.request("req", None) as trace:
        await batcher.submit(x(value))
        assert trace.span is not None
        return int(trace.span.get_span_context().span_id)


async def test_batch_span_links_every_request_it_served() -> None:
    t, exporter = tracing()
    gate = threading.Event()
    batcher = Batcher(AffineRuntime(gate=gate), BatchPolicy(max_batch_size=8), model="m",
                      version="1")  # fmt: skip
    first = asyncio.create_task(traced_submit(t, batcher, 0.0))
    await asyncio.to_thread(batcher.runtime.started.wait, 5)  # type: ignore[attr-defined]
    # Three requests queue behind the running one and form the next batch together.
    rest = [asyncio.create_task(traced_submit(t, batcher, float(i))) for i in (1, 2, 3)]
    await asyncio.sleep(0)  # one loop turn: each task queues its request before it waits
    assert batcher.queued == 3
    gate.set()
    ids = await asyncio.gather(first, *rest)
    await batcher.close()
    spans = exporter.get_finished_spans()
    batches = sorted(by_name(spans, "inferd.batch"), key=lambda s: len(s.links))
    assert [len(b.links) for b in batches] == [1, 3]
    shared = batches[1]
    assert {link.context.span_id for link in shared.links} == set(ids[1:])
    assert [link.attributes["inferd.batch.position"] for link in shared.links] == [0, 1, 2]
    assert shared.parent is not None
    assert shared.parent.span_id == ids[1]
    assert shared.attributes["inferd.batch.size"] == 3
    # Each request has a queue span under it; each batch one runtime span under it.
    queues = by_name(spans, "inferd.queue")
    assert sorted(q.parent.span_id for q in queues if q.parent) == sorted(ids)
    runtimes = by_name(spans, "inferd.runtime")
    assert {r.parent.span_id for r in runtimes if r.parent} == {b.context.span_id for b in batches}
    for runtime in runtimes:
        batch = next(b for b in batches if b.context.span_id == runtime.parent.span_id)  # type: ignore[union-attr]
        assert batch.start_time <= runtime.start_time <= runtime.end_time <= batch.end_time
    for queue in queues:
        assert queue.start_time is not None
        assert queue.end_time is not None
        assert queue.start_time <= queue.end_time


async def test_failed_batch_is_an_error_span_without_a_runtime_span() -> None:
    t, exporter = tracing()
    batcher = Batcher(AffineRuntime(poison=9.0), BatchPolicy(), model="m", version="1")
    with pytest.raises(InferenceFailed):
        await traced_submit(t, batcher, 9.0)
    await batcher.close()
    spans = exporter.get_finished_spans()
    (batch,) = by_name(spans, "inferd.batch")
    assert batch.status.status_code is StatusCode.ERROR
    assert "poisoned batch" in (batch.status.description or "")
    assert by_name(spans, "inferd.runtime") == []
    (request,) = by_name(spans, "req")
    assert request.status.status_code is StatusCode.ERROR  # InferenceFailed is a 500


async def test_unsampled_requests_make_no_spans_but_keep_a_trace_id() -> None:
    t, exporter = tracing(ALWAYS_OFF)
    batcher = Batcher(AffineRuntime(), BatchPolicy(), model="m", version="1")
    with t.request("req", None) as trace:
        await batcher.submit(x(1.0))
    await batcher.close()
    assert exporter.get_finished_spans() == ()
    assert not trace.sampled
    assert len(trace.trace_id) == 32
    assert int(trace.trace_id, 16) != 0


def test_incoming_traceparent_is_the_parent_even_when_the_rate_says_no() -> None:
    t, exporter = tracing(ALWAYS_OFF)  # parent-based: the caller's sampled flag wins
    with t.request("req", PARENT, "vendor=1") as trace:
        assert current_trace() is trace
        trace.set_attributes({"http.route": "/predict"})
    assert current_trace() is None
    (span,) = exporter.get_finished_spans()
    assert trace.trace_id == PARENT_TRACE
    assert span.kind is SpanKind.SERVER
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.context.trace_state.get("vendor") == "1"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/predict"


def test_roots_left_out_by_the_rate_never_reach_the_sdk_but_parents_decide() -> None:
    t, exporter = tracing(sample_rate=0.0)
    with t.request("root", None) as root:
        pass
    assert (root.span, root.sampled) == (None, False)
    assert len(root.trace_id) == 32
    assert int(root.trace_id, 16) != 0
    with t.request("child", PARENT) as child:
        pass
    assert child.sampled
    assert [s.name for s in exporter.get_finished_spans()] == ["child"]
    everything, exporter = tracing(sample_rate=1.0)
    for _ in range(20):
        with everything.request("root", None):
            pass
    assert len(exporter.get_finished_spans()) == 20


def test_a_root_left_out_is_current_only_when_json_logs_need_its_ids() -> None:
    t, _ = tracing(sample_rate=0.0)
    with t.request("root", None) as root:
        assert current_trace() is None  # nothing to record: no context variable to set
    assert len(root.trace_id) == 32  # still answered in x-trace-id
    provider = TracerProvider()
    logged = Tracing(provider, sample_rate=0.0, log_ids=True)
    with logged.request("root", None, request_id="r-1") as root:
        assert current_trace() is root  # its ids go on the request's log lines
    assert current_trace() is None


def test_a_sample_rate_outside_0_to_1_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="trace_sample_rate"):
        Tracing(None, sample_rate=1.5)


def test_request_ids_without_tracing_take_the_callers_trace_id() -> None:
    t = Tracing(None, log_ids=True)
    assert t.active
    with t.request("req", PARENT, request_id="r-7") as trace:
        assert (trace.request_id, trace.trace_id, trace.span) == ("r-7", PARENT_TRACE, None)
    with t.request("req", "00-not-a-trace-id-01") as trace:
        assert trace.trace_id == ""
        assert len(trace.request_id) == 16  # minted


def test_tracing_is_off_without_an_endpoint() -> None:
    assert not tracing_from_settings(None, 1.0).active
    assert tracing_from_settings(None, 1.0, log_ids=True).active


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_with_tracing_off_responses_carry_no_trace_id(
    examples_dir: Path, tmp_path: Path, log_format: str
) -> None:
    settings = Settings(home=tmp_path, model_repository=examples_dir, log_format=log_format)
    app = build_app(settings)
    assert await app.dataplane.start() == {}
    body = {"model_name": "linear", "input_data": {"x": [1.0]}, "request_id": "r-1"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.post("/predict", json=body, headers={"traceparent": PARENT})
    await app.dataplane.stop()
    assert r.status_code == 200
    assert "x-trace-id" not in r.headers
    # JSON logs name requests: the id the log lines carry comes back.
    assert r.headers.get("x-request-id") == ("r-1" if log_format == "json" else None)
