"""tritonclient (gRPC and HTTP, default settings) against a real `inferd serve` process."""

from __future__ import annotations

import queue
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from fixtures.servers import Server
from fixtures.triton import DATATYPES, sample, write_identity_model
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow


TRANSPORTS = ["grpcio", "native"]


@pytest.fixture(scope="module", params=TRANSPORTS)
def server(
    request: pytest.FixtureRequest, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server per gRPC core: the examples plus the Triton-style `identity` model."""
    home = tmp_path_factory.mktemp("grpc-server")
    repo = home / "repo"
    shutil.copytree(examples_dir, repo)
    write_identity_model(repo)
    with Server(repo, home, extra=["--grpc-transport", request.param]) as srv:
        yield srv


@pytest.fixture
def grpc_client(server: Server) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    yield client
    client.close()


def identity_inputs(module: Any, rows: int = 2) -> tuple[list[Any], dict[str, np.ndarray]]:
    arrays = {d: sample(d, rows) for d in DATATYPES}
    inputs = []
    for datatype, array in arrays.items():
        tensor = module.InferInput(f"in_{datatype}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs, arrays


def test_grpc_every_datatype_round_trips(grpc_client: grpcclient.InferenceServerClient) -> None:
    inputs, arrays = identity_inputs(grpcclient)
    result = grpc_client.infer("identity", inputs, request_id="all-types")
    assert result.get_response().id == "all-types"
    for datatype, array in arrays.items():
        got = result.as_numpy(f"out_{datatype}")
        assert got.dtype == array.dtype, datatype
        np.testing.assert_array_equal(got, array, err_msg=datatype)


def test_http_every_datatype_round_trips_binary_and_json(server: Server) -> None:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        for binary in (True, False):
            inputs, arrays = identity_inputs(httpclient)
            # In JSON, FP16 has no exact text form and UINT64 above 2**63 is refused by the
            # JSON codec (numpy parses such lists as float64); those two stay binary.
            raw = {d: binary or d in ("FP16", "UINT64") for d in DATATYPES}
            for tensor, datatype in zip(inputs, arrays, strict=True):
                tensor.set_data_from_numpy(arrays[datatype], binary_data=raw[datatype])
            outputs = [
                httpclient.InferRequestedOutput(f"out_{d}", binary_data=raw[d]) for d in DATATYPES
            ]
            result = client.infer("identity", inputs, outputs=outputs)
            for datatype, array in arrays.items():
                got = result.as_numpy(f"out_{datatype}")
                if datatype == "BYTES" and not binary:  # JSON strings come back as str
                    got = np.vectorize(str.encode, otypes=[object])(got)
                np.testing.assert_array_equal(got, array, err_msg=f"{datatype} binary={binary}")
    finally:
        client.close()


def test_grpc_metadata_readiness_config_and_statistics(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("linear")
    assert not grpc_client.is_model_ready("nope")
    assert grpc_client.get_server_metadata().name == "inferd"
    meta = grpc_client.get_model_metadata("identity", as_json=True)
    assert [t["datatype"] for t in meta["inputs"]] == list(DATATYPES)
    config = grpc_client.get_model_config("mlp", as_json=True)["config"]
    assert config["max_batch_size"] == 64
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    x = grpcclient.InferInput("x", [3], "FP32")
    x.set_data_from_numpy(np.array([1, 2, 3], dtype=np.float32))
    np.testing.assert_array_equal(grpc_client.infer("linear", [x]).as_numpy("y"), [3, 5, 7])
    stats = grpc_client.get_inference_statistics("linear", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) >= 1


def test_grpc_repository_load_unload_and_errors(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    names = {m.name for m in grpc_client.get_model_repository_index().models}
    assert {"linear", "mlp", "identity"} <= names
    grpc_client.unload_model("mlp")
    assert not grpc_client.is_model_ready("mlp")
    grpc_client.load_model("mlp")
    assert grpc_client.is_model_ready("mlp")
    x = grpcclient.InferInput("x", [2], "FP32")
    x.set_data_from_numpy(np.zeros(2, dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("linear", [x], model_version="9")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("mlp", [x])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'x'.shape" in info.value.message()


def test_grpc_stream_infer(grpc_client: grpcclient.InferenceServerClient) -> None:
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i in range(8):
            x = grpcclient.InferInput("x", [1], "FP32")
            x.set_data_from_numpy(np.array([i], dtype=np.float32))
            grpc_client.async_stream_infer("linear", [x], request_id=str(i))
        got = {}
        for _ in range(8):
            result, error = answers.get(timeout=10)
            assert error is None
            got[result.get_response().id] = float(result.as_numpy("y")[0])
    finally:
        grpc_client.stop_stream()
    assert got == {str(i): 2.0 * i + 1 for i in range(8)}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_workers_share_the_grpc_port(repo: Path, tmp_path: Path, transport: str) -> None:
    srv = Server(repo, tmp_path, workers=2, extra=["--grpc-transport", transport])
    try:
        srv.wait_ready()
        deadline = time.monotonic() + 30
        while _listeners(srv.grpc_port) < 2:  # each worker binds with SO_REUSEPORT
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.1)
        ready = 0
        while ready < 10:  # both workers load in the background: wait until all answer ready
            assert time.monotonic() < deadline, srv.output()
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{srv.grpc_port}")
            try:
                ready = ready + 1 if client.is_server_ready() else 0
            finally:
                client.close()
        x = grpcclient.InferInput("x", [1], "FP32")
        x.set_data_from_numpy(np.array([1], dtype=np.float32))
        for _ in range(20):  # new connections spread over both workers
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{srv.grpc_port}")
            try:
                assert client.infer("linear", [x], model_version="1").as_numpy("y")[0] == 3
            finally:
                client.close()
        text = httpx.get(f"{srv.url}/metrics").text
        line = 'inferd_requests_total{code="200",model="linear",protocol="grpc",version="1"}'
        assert [float(r.split()[-1]) for r in text.splitlines() if r.startswith(line)] == [20.0]
    finally:
        srv.stop()
        assert "Traceback" not in srv.output()


def _listeners(port: int) -> int:
    """Listening TCP sockets on ``port`` (state 0A in /proc/net/tcp and tcp6)."""
    rows = [
        row
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for row in Path(table).read_text().splitlines()[1:]
    ]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"
    )
