"""The HTTP protocol's response writes against a real `inferd serve`: each response is held
until its body is written, so pipelined requests, HEAD (a head without a body write) and
`Connection: close` must still come back whole and in order."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.servers import Server

pytestmark = pytest.mark.slow
BODY = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[%d.0]}]}'


@pytest.fixture(scope="module")
def server(repo_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(repo_module, tmp_path_factory.mktemp("home")) as srv:
        yield srv


@pytest.fixture(scope="module")
def repo_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inferd.serving.examples import ensure_examples

    return ensure_examples(tmp_path_factory.mktemp("repo"))


def _infer(x: int, extra: bytes = b"") -> bytes:
    body = BODY % x
    return (
        b"POST /v2/models/linear/infer HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n%s\r\n%s" % (len(body), extra, body)
    )


def _read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` responses as (head, body), each body read by its content-length."""
    sock.settimeout(10)
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses: {data!r}"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        length = _length(head)
        while len(data) < length:
            data += sock.recv(65536)
        out.append((head, data[:length]))
        data = data[length:]
    return out


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


def test_pipelined_requests_come_back_whole_and_in_order(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_infer(1) + _infer(2) + _infer(3))
        answers = _read_responses(sock, 3)
    for (head, body), x in zip(answers, (1, 2, 3), strict=True):
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        assert f"[{2 * x + 1}.0]".encode() in body, body


def test_a_head_request_is_answered_and_the_next_request_too(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"HEAD /v2/health/ready HTTP/1.1\r\nhost: t\r\n\r\n")
        sock.settimeout(10)
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # a HEAD answer has a head and nothing else
            chunk = sock.recv(65536)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 405"), head
        sock.sendall(_infer(4))
        ((head, body),) = _read_responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert b"[9.0]" in body


def test_connection_close_gets_the_whole_answer_then_eof(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_infer(5, b"connection: close\r\n"))
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert len(body) == _length(head)
    assert b"[11.0]" in body
    assert b"server: uvicorn" not in head.lower()  # the software is not named to clients
