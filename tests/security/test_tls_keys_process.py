"""A real `inferd serve` with --auth on and TLS; the keys CLI and the SDK against it; gRPC
TLS and mTLS with certificates the test makes."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import trustme
from fixtures.servers import Server

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.client import Client
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol.grpc_codec import SERVICE
from inferd.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_pem(ca: trustme.CA, where: Path) -> tuple[Path, Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = (where / "cert.pem", where / "key.pem", where / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    return paths


@pytest.fixture
def server(
    repo: Path, tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, Path]]:
    cert, key, ca_file = write_pem(ca, tmp_path)
    monkeypatch.setenv("INFERD_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    extra = ["--auth", "on", "--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    proc = Server(repo, tmp_path, extra=extra)
    try:
        yield from _ready(proc, ca_file)
    finally:
        proc.stop()


def _ready(proc: Server, ca_file: Path) -> Iterator[tuple[Server, Path]]:
    wait_https(proc, ssl.create_default_context(cafile=ca_file))
    yield proc, ca_file


def wait_https(proc: Server, verify: ssl.SSLContext) -> None:
    """Until the HTTPS server answers ready (60 s at most)."""
    url = proc.url.replace("http://", "https://")
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, proc.output()
        assert proc.proc.poll() is None, proc.output()
        time.sleep(0.1)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "inferd.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_https_auth_cli_and_sdk(server: tuple[Server, Path]) -> None:
    proc, ca_file = server
    url = proc.url.replace("http://", "https://")
    assert "authentication on" in proc.output()
    r = httpx.get(f"{url}/v2/models/linear", verify=ssl.create_default_context(cafile=ca_file))
    assert r.status_code == 401
    made = cli("keys", "--url", url, "--api-key", ADMIN, "create", "--role", "predict",
               "--models", "linear")  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    assert key.startswith("inferd_")
    denied = cli("models", "--url", url, "--api-key", key, "list")
    assert denied.returncode == 2
    assert "403" in denied.stderr
    listed = cli("models", "--url", url, "--api-key", ADMIN, "list")
    assert listed.returncode == 0, listed.stderr
    assert "linear" in listed.stdout
    with Client(url, api_key=key) as client:
        assert client.infer("linear", {"x": np.ones(1, dtype=np.float32)})["y"].tolist() == [4.0]
    keys = cli("keys", "--url", url, "--api-key", ADMIN, "--json", "list")
    assert key.split("_")[1] in keys.stdout
    assert key not in keys.stdout
    revoked = cli("keys", "--url", url, "--api-key", ADMIN, "revoke", key.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    r = httpx.get(
        f"{url}/v2/models/linear",
        headers={"x-api-key": key},
        verify=ssl.create_default_context(cafile=ca_file),
    )
    assert r.status_code == 401
    # gRPC over TLS on the same server, with the key in the metadata.
    channel = grpc.secure_channel(
        f"localhost:{proc.grpc_port}", grpc.ssl_channel_credentials(ca_file.read_bytes())
    )
    live = channel.unary_unary(
        f"/{SERVICE}/ServerLive", request_serializer=pb.ServerLiveRequest.SerializeToString,
        response_deserializer=pb.ServerLiveResponse.FromString,
    )  # fmt: skip
    assert live(pb.ServerLiveRequest(), timeout=10).live
    channel.close()


def test_keys_cli_direct(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    made = cli("keys", "--registry-url", url, "--json", "create", "--role", "admin")
    assert made.returncode == 0, made.stderr
    assert '"role": "admin"' in made.stdout
    listed = cli("keys", "--registry-url", url, "list")
    assert "admin" in listed.stdout
    bad = cli("keys", "--registry-url", url, "revoke", "nope")
    assert bad.returncode == 2
    assert "not found" in bad.stderr


@pytest.mark.parametrize("transport", ["grpcio", "native"])
async def test_grpc_mutual_tls(repo: Path, tmp_path: Path, ca: trustme.CA, transport: str) -> None:
    from inferd.transport.grpc.tls import server_tls

    cert, key, ca_file = write_pem(ca, tmp_path)
    settings = Settings(home=tmp_path, model_repository=repo, tls_certfile=cert,
                        tls_keyfile=key, tls_ca_file=ca_file)  # fmt: skip
    app = build_app(settings)
    server = inference_server(
        app.dataplane, "127.0.0.1", 0, tls=server_tls(settings), transport=transport
    )
    port = await server.start()
    client_cert = ca.issue_cert("client@example")

    async def live(credentials: grpc.ChannelCredentials) -> bool:
        async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
            call = channel.unary_unary(
                f"/{SERVICE}/ServerLive",
                request_serializer=pb.ServerLiveRequest.SerializeToString,
                response_deserializer=pb.ServerLiveResponse.FromString,
            )
            return bool((await call(pb.ServerLiveRequest(), timeout=10)).live)

    with_cert = grpc.ssl_channel_credentials(
        ca.cert_pem.bytes(), client_cert.private_key_pem.bytes(),
        client_cert.cert_chain_pems[0].bytes(),
    )  # fmt: skip
    assert await live(with_cert)
    with pytest.raises(grpc.aio.AioRpcError):
        await live(grpc.ssl_channel_credentials(ca.cert_pem.bytes()))
    await server.stop(0)


@pytest.mark.slow
def test_https_and_grpcs_mutual_tls_with_the_sdk(
    repo: Path, tmp_path: Path, ca: trustme.CA
) -> None:
    """A real server with --tls-ca-file: clients without a certificate from the CA are
    refused during the handshake, over HTTP and gRPC; the SDK's Tls presents one."""
    from inferd.client import ClientError, Retry, Tls

    cert, key, ca_file = write_pem(ca, tmp_path)
    client_cert = ca.issue_cert("client@example")
    client_pem, client_key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    client_cert.cert_chain_pems[0].write_to_path(str(client_pem))
    client_cert.private_key_pem.write_to_path(str(client_key))
    tls = Tls(ca_file, client_pem, client_key)
    extra = ["--tls-certfile", str(cert), "--tls-keyfile", str(key), "--tls-ca-file", str(ca_file)]
    proc = Server(repo, tmp_path, extra=extra)
    try:
        url = proc.url.replace("http://", "https://")
        wait_https(proc, tls.ssl_context())
        x = {"x": np.array([1.0, 2.0], dtype=np.float32)}
        with Client(url, tls=tls) as client:
            assert client.infer("linear", x)["y"].tolist() == [4.0, 7.0]  # v2: 3x + 1
        grpc_url = f"grpcs://localhost:{proc.grpc_port}"
        with Client(grpc_url, tls=tls) as client:
            assert client.infer("linear", x)["y"].tolist() == [4.0, 7.0]  # v2: 3x + 1
        # No client certificate: the TLS handshake fails, over both transports.
        no_cert = Tls(ca_file)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v2/models/linear", verify=no_cert.ssl_context(), timeout=10)
        with (
            Client(url, tls=no_cert, retry=Retry(attempts=1)) as client,
            pytest.raises(ClientError),
        ):
            client.live()
        with Client(grpc_url, tls=no_cert, retry=Retry(attempts=1), timeout=10) as client:
            with pytest.raises(ClientError) as info:
                client.live()
            assert info.value.code == "UNAVAILABLE"
        with pytest.raises(ValueError, match="cert_file and key_file together"):
            Tls(ca_file, client_pem)
    finally:
        proc.stop()
