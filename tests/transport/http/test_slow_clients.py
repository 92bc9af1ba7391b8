"""Slow clients (slowloris) against a real `inferd serve`: a request must arrive in full
within --request-read-timeout-s, or the client gets 408 and its connection is closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.servers import Server

pytestmark = pytest.mark.slow
X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path, extra=["--request-read-timeout-s", "1"]) as srv:
        yield srv


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    start = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - start


def test_silent_and_trickling_clients_are_cut_off(server: Server) -> None:
    silent = socket.create_connection(("127.0.0.1", server.port))
    headers = socket.create_connection(("127.0.0.1", server.port))
    headers.sendall(b"POST /v2/models/linear/infer HTTP/1.1\r\nhost: x\r\n")  # never ends
    body = socket.create_connection(("127.0.0.1", server.port))
    start = b"POST /v2/models/linear/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n"
    body.sendall(start + b"content-type: application/json\r\n\r\n{")  # 1 of 500 bytes
    # Meanwhile the server answers everyone else at once.
    r = httpx.post(f"{server.url}/v2/models/linear/infer", json=X, timeout=5)
    assert r.status_code == 200
    for sock in (silent, headers, body):
        with sock:
            data, waited = _read_until_closed(sock, limit_s=10)
            assert waited < 5
            assert data.startswith(b"HTTP/1.1 408 Request Timeout"), data
            assert b"INFERD_REQUEST_READ_TIMEOUT_S" in data


def test_a_slow_but_steady_keep_alive_client_is_served(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for _ in range(3):  # each request is read fast; idle time between them is fine
            assert client.post("/v2/models/linear/infer", json=X).status_code == 200
            time.sleep(1.5)
    assert "Traceback" not in server.output()


def test_a_later_request_on_a_connection_gets_its_own_deadline(server: Server) -> None:
    request = (
        b"POST /v2/models/linear/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n"
    )
    body = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}'
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request % len(body) + body)  # answered at once
        sock.settimeout(5)
        answer = sock.recv(65536)
        while not answer.endswith(b"]}]}"):  # headers and body may come in two reads
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.5)  # the connection's timer was set for the first request
        sock.sendall(request % 500 + b"{")  # the second request never completes
        data, waited = _read_until_closed(sock, limit_s=10)
    assert 0.7 < waited < 5  # its own 1 s deadline: neither the first one's nor none
    assert data.startswith(b"HTTP/1.1 408 Request Timeout"), data
