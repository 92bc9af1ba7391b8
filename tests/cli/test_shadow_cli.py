"""`inferd shadow` and the SDK's shadow calls against a real `inferd serve --workers 2`:
the target reaches both workers, and results merge what both mirrored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fixtures.servers import Server

from inferd.cli import shadow
from inferd.cli.main import main
from inferd.client import Client, ClientError
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE


def test_results_text_shows_rates_and_placeholders() -> None:
    pair = {
        "primary_version": "2", "shadow_version": "1", "sampled": 10, "mirrored": 9,
        "compared": 8, "failed": 1, "dropped": 1, "incomparable": 0, "label_rows": 8,
        "exact_match_rate": 0.75, "values": 0, "mean_abs_diff": None, "max_abs_diff": None,
        "shadow_latency_ms": {"mean": 2.0, "p50": 1.5, "p99": 9.0},
        "primary_latency_ms": {"mean": 1.0, "p50": 1.0, "p99": 3.0},
    }  # fmt: skip
    text = shadow.results_text({"model": "m", "config": None, "pairs": [pair]})
    assert "m: no shadow now" in text
    assert "v2 vs shadow v1: 10 sampled, 8 compared, 1 failed, 1 dropped" in text
    assert "exact match 75.00% of 8 label rows; mean |diff| - over 0 values" in text
    assert "shadow 1.5/9" in text
    empty = shadow.results_text({"model": "m", "config": None, "pairs": []})
    assert "(nothing mirrored yet)" in empty


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path, workers=2, extra=["--poll-interval-s", "0.2"]) as srv:
        yield srv


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["shadow", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def infer_on_a_new_connection(target: str, rid: str) -> float:
    """One gRPC call on its own connection: the kernel spreads those over both workers
    (SO_REUSEPORT), where one HTTP socket may hand every connection to one of them."""
    msg = pb.ModelInferRequest(model_name="linear", id=rid)
    msg.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(2.0)
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        call = ch.unary_unary(f"/{SERVICE}/ModelInfer",
                              request_serializer=pb.ModelInferRequest.SerializeToString,
                              response_deserializer=pb.ModelInferResponse.FromString)  # fmt: skip
        for _ in range(100):  # a worker still starting answers UNAVAILABLE: retry
            try:
                answer = call(msg, timeout=30)
                return float(np.frombuffer(answer.raw_output_contents[0], "<f4")[0])
            except grpc.RpcError as err:
                if err.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(0.1)
    raise AssertionError("the server stayed unavailable")


@pytest.mark.slow
def test_shadow_over_two_workers_through_cli_and_sdk(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", server.url, "--json"]
    config = cli(capsys, "set", "linear", "1", "--fraction", "1", "--queue-size", "500", *url)
    assert (config["version"], config["fraction"], config["queue_size"]) == (1, 1.0, 500)
    assert cli(capsys, "show", "linear", *url)["version"] == 1
    time.sleep(1.0)  # five polls: the other worker has the target too
    target, sent = f"127.0.0.1:{server.grpc_port}", 0
    with Client(server.url) as client:
        deadline = time.monotonic() + 60  # each worker flushes every 5 s
        pair: dict[str, Any] = {}
        while time.monotonic() < deadline:
            for _ in range(10):
                assert infer_on_a_new_connection(target, f"r{sent}") == 7.0  # v2, not the shadow
                sent += 1
            time.sleep(1.0)
            pairs = client.shadow_results("linear")["pairs"]
            pair = pairs[0] if pairs else {}
            if pair.get("processes") == 2 and pair.get("compared") == sent:
                break
        assert pair["processes"] == 2  # both workers mirrored, each flushed its own row
        assert (pair["sampled"], pair["compared"], pair["failed"]) == (sent, sent, 0)
        assert pair["mean_abs_diff"] == pytest.approx(2.0)  # |7 - 5|
        assert client.delete_shadow("linear")["version"] == 1
        with pytest.raises(ClientError) as info:
            client.get_shadow("linear")
        assert info.value.status == 404
        assert client.set_shadow("linear", 1, 0.1)["fraction"] == 0.1
    assert main(["shadow", "results", "linear", "--url", server.url]) == 0
    text = capsys.readouterr().out
    assert f"linear: shadow version 1, fraction 0.1\n  v2 vs shadow v1: {sent} sampled" in text
    assert "0 failed, 0 dropped, 0 incomparable" in text
