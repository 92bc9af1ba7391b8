"""Tracing and JSON logs end to end: a real `inferd serve` exporting to a real OTLP receiver.

One server for the module, started with ``--trace-sample-rate 0``: only requests whose
``traceparent`` says "sampled" are traced (parent-based sampling), so each test owns its
trace ids and sees exactly its own spans.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
from fixtures.models import write_linear_model
from fixtures.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from fixtures.servers import Server

from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE

pytestmark = pytest.mark.slow

BATCH_DELAY_YAML = "batching: {max_queue_delay_ms: 1000}\n"


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """A fresh W3C traceparent and its trace and parent span ids."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


@pytest.fixture(scope="module")
def traced(
    examples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, OtlpReceiver]]:
    home = tmp_path_factory.mktemp("tracing")
    repo = home / "repo"
    shutil.copytree(examples_dir, repo)
    batched = write_linear_model(repo, "onnx", "batched")  # waits 1 s for company
    (batched / "model.yaml").write_text((batched / "model.yaml").read_text() + BATCH_DELAY_YAML)
    with otlp_receiver() as receiver, pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 100 ms, not every 5 s
        extra = ["--otlp-endpoint", receiver.endpoint, "--trace-sample-rate", "0",
                 "--log-format", "json", "--access-log", "--log-level", "info"]  # fmt: skip
        with Server(repo, home, extra=extra) as server:
            yield server, receiver


def of_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def tree_done(trace_id: str, requests: int = 1) -> object:
    """Until ``requests`` request spans and a runtime span of the trace arrived."""

    def done(spans: list[ReceivedSpan]) -> bool:
        mine = of_trace(spans, trace_id)
        names = [s.name for s in mine]
        return names.count("inferd.queue") >= requests and "inferd.runtime" in names

    return done


def check_tree(spans: list[ReceivedSpan], trace_id: str, parent_id: str, name: str) -> None:
    """request span (child of the caller's) -> queue, batch -> runtime; batch links it."""
    mine = of_trace(spans, trace_id)
    (request,) = [s for s in mine if s.name == name]
    assert request.parent_id == parent_id
    assert request.kind == 2  # SPAN_KIND_SERVER
    (queue,) = [s for s in mine if s.name == "inferd.queue"]
    (batch,) = [s for s in mine if s.name == "inferd.batch"]
    (runtime,) = [s for s in mine if s.name == "inferd.runtime"]
    assert queue.parent_id == request.span_id
    assert batch.parent_id == request.span_id
    assert runtime.parent_id == batch.span_id
    assert (trace_id, request.span_id) in batch.links
    assert request.start_ns <= queue.start_ns <= queue.end_ns <= batch.start_ns
    assert batch.start_ns <= runtime.start_ns <= runtime.end_ns <= batch.end_ns <= request.end_ns


def test_http_infer_span_tree_keeps_the_callers_trace(
    traced: tuple[Server, OtlpReceiver],
) -> None:
    server, receiver = traced
    parent, trace_id, span_id = traceparent()
    body = {"id": "v2-req-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2],
                                          "data": [1, 2]}]}  # fmt: skip
    r = httpx.post(f"{server.url}/v2/models/linear/infer", json=body,
                   headers={"traceparent": parent}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["x-trace-id"] == trace_id
    assert r.headers["x-request-id"] == "v2-req-1"
    spans = receiver.wait_for(tree_done(trace_id))
    check_tree(spans, trace_id, span_id, "POST /v2/models/{model}/infer")
    (request,) = [s for s in of_trace(spans, trace_id) if s.parent_id == span_id]
    assert request.attributes["inferd.model"] == "linear"
    assert request.attributes["inferd.request_id"] == "v2-req-1"
    assert request.attributes["http.response.status_code"] == 200
    assert receiver.resources[0]["service.name"] == "inferd"


def test_concurrent_requests_share_one_batch_span_linked_to_each(
    traced: tuple[Server, OtlpReceiver],
) -> None:
    server, receiver = traced
    parents = [traceparent() for _ in range(4)]

    def send(parent: str) -> httpx.Response:
        body = {"model_name": "batched", "input_data": {"x": [1.0]}}
        return httpx.post(f"{server.url}/predict", json=body, headers={"traceparent": parent},
                          timeout=10)  # fmt: skip

    with ThreadPoolExecutor(4) as pool:  # all four arrive within the model's 1 s delay
        answers = list(pool.map(send, [p for p, _, _ in parents]))
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["batch_info"]["batch_size"] for a in answers] == [4] * 4
    trace_ids = {trace_id for _, trace_id, _ in parents}

    def all_queued(spans: list[ReceivedSpan]) -> bool:
        queued = {s.trace_id for s in spans if s.name == "inferd.queue"}
        return trace_ids <= queued and any(s.name == "inferd.runtime" and s.trace_id in
                                           trace_ids for s in spans)  # fmt: skip

    spans = receiver.wait_for(all_queued)
    requests = [s for s in spans if s.trace_id in trace_ids and s.name == "POST /predict"]
    (batch,) = [s for s in spans if s.name == "inferd.batch" and s.trace_id in trace_ids]
    assert sorted(batch.links) == sorted((s.trace_id, s.span_id) for s in requests)
    assert batch.parent_id in {s.span_id for s in requests}
    assert batch.attributes["inferd.batch.size"] == 4
    assert batch.attributes["inferd.model"] == "batched"


def test_unsampled_request_exports_nothing_but_answers_its_trace_id(
    traced: tuple[Server, OtlpReceiver],
) -> None:
    server, receiver = traced
    body = {"model_name": "linear", "input_data": {"x": [1.0]}}
    quiet = httpx.post(f"{server.url}/predict", json=body, timeout=10)  # rate 0, no parent
    refused, refused_id, _ = traceparent(sampled=False)
    declined = httpx.post(f"{server.url}/predict", json=body, headers={"traceparent": refused},
                          timeout=10)  # fmt: skip
    assert declined.headers["x-trace-id"] == refused_id
    quiet_id = quiet.headers["x-trace-id"]
    assert len(quiet_id) == 32
    assert quiet_id != "0" * 32
    # Spans leave in order: once a later sampled request's spans are in, the others' would be.
    parent, trace_id, _ = traceparent()
    httpx.post(f"{server.url}/predict", json=body, headers={"traceparent": parent}, timeout=10)
    spans = receiver.wait_for(tree_done(trace_id))
    assert of_trace(spans, quiet_id) == []
    assert of_trace(spans, refused_id) == []


def test_grpc_model_infer_and_stream_are_traced_from_metadata(
    traced: tuple[Server, OtlpReceiver],
) -> None:
    server, receiver = traced
    msg = pb.ModelInferRequest(model_name="linear", id="g-1")
    msg.inputs.add(name="x", datatype="FP32", shape=[2])
    msg.raw_input_contents.append(np.asarray([1, 2], dtype="<f4").tobytes())
    parent, trace_id, span_id = traceparent()
    stream_parent, stream_trace, stream_span = traceparent()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        unary = channel.unary_unary(
            f"/{SERVICE}/ModelInfer", request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )  # fmt: skip
        _, call = unary.with_call(msg, metadata=[("traceparent", parent)], timeout=10)
        stream = channel.stream_stream(
            f"/{SERVICE}/ModelStreamInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )  # fmt: skip
        answers = list(stream(iter([msg]), metadata=[("traceparent", stream_parent)], timeout=10))
    metadata = dict(call.initial_metadata())
    assert (metadata["x-trace-id"], metadata["x-request-id"]) == (trace_id, "g-1")
    (answer,) = answers
    assert answer.infer_response.parameters["trace_id"].string_param == stream_trace
    spans = receiver.wait_for(tree_done(trace_id))
    check_tree(spans, trace_id, span_id, f"{SERVICE}/ModelInfer")
    spans = receiver.wait_for(tree_done(stream_trace))
    check_tree(spans, stream_trace, stream_span, f"{SERVICE}/ModelStreamInfer")


def test_json_log_lines_carry_the_request_id_and_trace_id(
    traced: tuple[Server, OtlpReceiver],
) -> None:
    server, _ = traced
    parent, trace_id, _ = traceparent()
    body = {"model_name": "linear", "input_data": {"x": [1.0]}, "request_id": "log-req-9"}
    r = httpx.post(f"{server.url}/predict", json=body, headers={"traceparent": parent},
                   timeout=10)  # fmt: skip
    assert r.status_code == 200
    lines = [orjson.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert len(lines) == len(server.output().splitlines())  # every line is one JSON object
    mine = [line for line in lines if line["request_id"] == "log-req-9"]
    assert mine, "no log line names the request"
    assert all(line["trace_id"] == trace_id for line in mine)
    assert any("POST /predict" in line["message"] and line["logger"] == "uvicorn.access"
               for line in mine)  # fmt: skip
    assert {"timestamp", "level", "logger", "message"} <= set(mine[0])


def test_a_failed_request_is_traced_and_answers_its_trace_id(
    traced: tuple[Server, OtlpReceiver],
) -> None:
    server, receiver = traced
    parent, trace_id, _ = traceparent()
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}
    r = httpx.post(f"{server.url}/v2/models/nope/infer", json=body,
                   headers={"traceparent": parent}, timeout=10)  # fmt: skip
    assert r.status_code == 404
    assert r.headers["x-trace-id"] == trace_id
    spans = receiver.wait_for(lambda spans: bool(of_trace(spans, trace_id)))
    (request,) = of_trace(spans, trace_id)  # refused before any queue: no other span
    assert request.attributes["http.response.status_code"] == 404
    assert request.status_code == 0  # a 4xx is the caller's error, not the server's (UNSET)
