"""A PostgreSQL registry that accepts connections and never answers (a frozen host, a
partition) fails registry calls with RegistryUnavailable within libpq's timeouts."""

from __future__ import annotations

import socket
import threading
import time

from inferd.errors import RegistryUnavailable
from inferd.registry.store import Registry, postgres_args


def test_a_silent_database_fails_within_the_default_connect_timeout() -> None:
    errors: list[BaseException] = []

    def connect(port: int) -> None:
        try:
            Registry(f"postgresql://postgres@127.0.0.1:{port}/db")
        except BaseException as err:
            errors.append(err)

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes handshakes; nobody ever answers
        started = time.monotonic()
        caller = threading.Thread(target=connect, args=(silent.getsockname()[1],), daemon=True)
        caller.start()
        caller.join(timeout=20)  # without a connect timeout it would wait forever
        took = time.monotonic() - started
    assert not caller.is_alive(), "the registry call still waits after 20 s"
    assert isinstance(errors[0], RegistryUnavailable), errors
    assert "timeout" in str(errors[0])
    assert 4 < took < 15, took  # connect_timeout 5 s


def test_the_timeouts_default_and_the_url_overrides_them() -> None:
    defaults = postgres_args("postgresql://h/db")
    assert defaults["connect_timeout"] == 5
    assert defaults["tcp_user_timeout"] == 10_000
    given = postgres_args("postgresql://h/db?connect_timeout=2&keepalives=0")
    assert "connect_timeout" not in given
    assert "keepalives" not in given
    assert given["keepalives_idle"] == 5
