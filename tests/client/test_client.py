"""The SDK against a real `inferd serve` process, over HTTP (binary and JSON) and gRPC (the
default native core, and grpcio's C-core in a second process)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fixtures.servers import Server
from fixtures.triton import DATATYPES, sample, write_identity_model

from inferd.client import AsyncClient, Client, ClientError, Retry

pytestmark = pytest.mark.slow

KINDS = ("http", "http-json", "grpc", "grpc-grpcio")


def _serve(tmp_path_factory: pytest.TempPathFactory, examples_dir: Path, *extra: str) -> Server:
    home = tmp_path_factory.mktemp("sdk-server")
    repo = home / "repo"
    shutil.copytree(examples_dir, repo)
    write_identity_model(repo)
    return Server(repo, home, extra=list(extra))


@pytest.fixture(scope="module")
def server(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _serve(tmp_path_factory, examples_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def grpcio_server(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _serve(tmp_path_factory, examples_dir, "--grpc-transport", "grpcio") as srv:
        yield srv


def url(server: Server, kind: str) -> str:
    if kind.startswith("grpc"):
        return f"grpc://127.0.0.1:{server.grpc_port}"
    return f"http://127.0.0.1:{server.port}"


def server_for(request: pytest.FixtureRequest, kind: str) -> Server:
    """The grpcio-core server for ``grpc-grpcio``, the default (native) one otherwise."""
    name = "grpcio_server" if kind == "grpc-grpcio" else "server"
    server: Server = request.getfixturevalue(name)
    return server


@pytest.fixture(params=KINDS)
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    kind = request.param
    with Client(url(server_for(request, kind), kind), binary=kind != "http-json") as c:
        yield c


def test_health_and_metadata(client: Client) -> None:
    assert client.live()
    assert client.ready()
    assert client.server_metadata()["name"] == "inferd"
    meta = client.model_metadata("mlp")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 256]}]
    assert client.model_ready("linear", "1")
    assert not client.model_ready("nope")
    config = client.model_config("mlp")
    assert config["max_batch_size"] == 64
    assert config["input"][0] == {"name": "x", "data_type": "TYPE_FP32", "dims": [256]} | {
        k: v for k, v in config["input"][0].items() if k not in ("name", "data_type", "dims")
    }


def test_infer_numpy_in_and_out(client: Client) -> None:
    result = client.infer(
        "linear", {"x": np.array([1, 2, 3], dtype=np.float32)}, version="1", request_id="q"
    )
    assert (result.model_name, result.model_version, result.id) == ("linear", "1", "q")
    np.testing.assert_array_equal(result["y"], [3, 5, 7])
    assert result["y"].dtype == np.float32


def test_every_datatype_round_trips(client: Client) -> None:
    inputs = {f"in_{d}": sample(d) for d in DATATYPES}
    if client._http is not None and not client._protocol.binary:  # type: ignore[union-attr]
        # The server's JSON decoding refuses UINT64 above 2**63 and the shortest text of the
        # FP32 extremes (it reads 3.4028235e38 as above FP32's maximum): moderate values here,
        # the binary runs cover the extremes.
        for name in ("UINT64", "FP16", "FP32"):
            inputs[f"in_{name}"] = (
                (np.arange(6) * 3).astype(inputs[f"in_{name}"].dtype).reshape(2, 3)
            )
    outputs = [f"out_{d}" for d in DATATYPES if d != "FP64"]
    result = client.infer("identity", inputs, outputs=outputs)
    assert sorted(result.outputs) == sorted(outputs)
    for name in outputs:
        expected = inputs["in_" + name.removeprefix("out_")]
        assert result[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(result[name], expected, err_msg=name)


def test_errors_carry_the_server_message(client: Client) -> None:
    with pytest.raises(ClientError) as info:
        client.infer("linear", {"x": np.zeros(2, dtype=np.int32)}, version="1")
    assert (info.value.status, info.value.code) == (400, "INVALID_ARGUMENT")
    assert "input 'x'.datatype: expected FP32, got INT32" in info.value.message
    with pytest.raises(ClientError) as info:
        client.model_metadata("nope")
    assert info.value.code == "NOT_FOUND"


def test_statistics_and_repository(client: Client) -> None:
    client.infer("linear", {"x": np.ones(1, dtype=np.float32)}, version="1")
    stats = client.statistics("linear", "1")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] >= 1
    index = client.repository_index()
    assert {"name": "mlp", "version": "1", "state": "READY"} in index
    client.unload_model("identity")
    assert not client.model_ready("identity")
    client.load_model("identity")
    assert client.model_ready("identity")


@pytest.mark.parametrize("kind", KINDS)
async def test_async_client(request: pytest.FixtureRequest, kind: str) -> None:
    server = server_for(request, kind)
    async with AsyncClient(url(server, kind), binary=kind != "http-json") as client:
        assert await client.ready()
        assert (await client.model_metadata("linear"))["name"] == "linear"
        result = await client.infer("linear", {"x": np.array([2.0], dtype=np.float32)})
        assert result["y"].tolist() in ([5.0], [7.0])
        with pytest.raises(ClientError) as info:
            await client.infer("nope", {"x": np.ones(1, dtype=np.float32)})
        assert info.value.code == "NOT_FOUND"


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_retries_until_the_server_is_up(repo: Path, tmp_path: Path, kind: str) -> None:
    # Connection refused, then 503 while the models load: both are retried with backoff.
    srv = Server(repo, tmp_path)
    try:
        retry = Retry(attempts=400, backoff_s=0.05, max_backoff_s=0.2)
        with Client(url(srv, kind), retry=retry, timeout=10) as client:
            result = client.infer("linear", {"x": np.ones(1, dtype=np.float32)}, version="1")
        assert result["y"].tolist() == [3.0]
    finally:
        srv.stop()


def test_no_retry_when_attempts_is_one(tmp_path: Path) -> None:
    with (
        Client("http://127.0.0.1:9", retry=Retry(attempts=1)) as client,
        pytest.raises(ClientError) as info,
    ):
        client.live()
    assert info.value.code == "UNAVAILABLE"
    assert info.value.retryable


def test_bad_url_and_retry_settings() -> None:
    with pytest.raises(ValueError, match="url: expected"):
        Client("ftp://x")
    from inferd.client._transport import parse_url

    assert parse_url("grpcs://h:8001") == ("grpcs", "h:8001")
    assert parse_url("https://h:8000/") == ("https", "https://h:8000")
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)
    error = ClientError("busy", status=503, code="UNAVAILABLE", retry_after_s=0.5)
    retry = Retry(backoff_s=0.1, max_backoff_s=1.0, jitter=0.0)
    assert retry.delay(1, error) == 0.5  # the server's Retry-After wins when longer
    assert retry.delay(4, error) == 0.8
    assert retry.delay(10, error) == 1.0


def test_a_gateways_502_is_retried_and_a_500_is_not() -> None:
    from inferd.client._types import http_error

    # HAProxy answers 502 when the replica it chose died before answering (SIGKILL).
    lost = http_error(502, "Bad Gateway", None)
    assert (lost.code, lost.retryable) == ("UNAVAILABLE", True)
    failed = http_error(500, "boom", None)
    assert (failed.code, failed.retryable) == ("INTERNAL", False)


def test_management_calls_go_over_http(server: Server) -> None:
    with Client(url(server, "http")) as client:
        answer = client.management("GET", "models")
        assert "linear" in str(answer)
    with Client(url(server, "grpc")) as client, pytest.raises(ClientError) as info:
        client.management("GET", "models")
    assert info.value.code == "UNIMPLEMENTED"


def test_infer_many_keeps_order_and_reports_failures(client: Client) -> None:
    requests = [{"x": np.array([float(i)], dtype=np.float32)} for i in range(40)]
    results = client.infer_many("linear", requests, version="1")
    assert [float(r["y"][0]) for r in results] == [2.0 * i + 1 for i in range(40)]
    bad = [*requests[:3], {"x": np.zeros(1, dtype=np.int32)}, requests[4]]
    mixed = client.infer_many("linear", bad, version="1", return_exceptions=True)
    assert isinstance(mixed[3], ClientError)
    assert "datatype" in mixed[3].message
    assert [float(r["y"][0]) for i, r in enumerate(mixed) if i != 3] == [1.0, 3.0, 5.0, 9.0]
    with pytest.raises(ClientError, match="request #3"):
        client.infer_many("linear", bad, version="1")
    assert client.infer_many("linear", []) == []


async def test_async_infer_many(server: Server) -> None:
    for kind in ("http", "grpc"):
        async with AsyncClient(url(server, kind)) as client:
            requests = [{"x": np.array([float(i)], dtype=np.float32)} for i in range(100)]
            results = await client.infer_many("linear", requests, version="1")
            assert [float(r["y"][0]) for r in results] == [2.0 * i + 1 for i in range(100)]
