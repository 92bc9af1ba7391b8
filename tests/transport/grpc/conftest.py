"""The native gRPC core serving the examples in the test's own process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fixtures.h2 import SERVED_LIMIT, Served

from inferd.api.app import build_app
from inferd.api.grpc import inference_server
from inferd.settings import Settings


@pytest.fixture
async def served(repo: Path, tmp_path: Path) -> AsyncIterator[Served]:
    """``inference_server`` on the native core, messages up to ``SERVED_LIMIT``, on the examples."""
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    server = inference_server(
        app.dataplane, "127.0.0.1", 0, max_message_bytes=SERVED_LIMIT, transport="native"
    )
    port = await server.start()
    yield Served(server, port, repo)
    await server.stop(1.0)
    await app.dataplane.stop()
