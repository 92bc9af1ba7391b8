"""Triton's perf_analyzer against a real `inferd serve`, over gRPC and HTTP, short and bounded.

`make test` installs perf_analyzer (the `perf-analyzer` Makefile target); this test installs
nothing and fails when it is missing.
"""

from __future__ import annotations

import csv
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.servers import Server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PERF_DIR = ROOT / ".venv" / "perf_analyzer"
BINARY = PERF_DIR / "bin" / "perf_analyzer"
LIBRARIES = PERF_DIR / "nvidia" / "cuda_runtime" / "lib"


@pytest.fixture(scope="module")
def server(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("perf-server")
    with Server(examples_dir, home) as srv:
        yield srv


@pytest.fixture(scope="module")
def grpcio_server(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same server on grpcio's C-core (`--grpc-transport grpcio`; native is the default)."""
    home = tmp_path_factory.mktemp("perf-server-grpcio")
    with Server(examples_dir, home, extra=["--grpc-transport", "grpcio"]) as srv:
        yield srv


def perf_analyzer(args: list[str], out: Path) -> list[dict[str, str]]:
    """Run perf_analyzer with a short, bounded measurement; return its CSV rows."""
    if not BINARY.is_file():
        pytest.fail(f"{BINARY} is missing; install it with `make perf-analyzer`")
    env = {**os.environ, "LD_LIBRARY_PATH": str(LIBRARIES)}
    command = [
        str(BINARY), *args, "--concurrency-range", "1:4:3", "--measurement-interval", "300",
        "--stability-percentage", "1000", "--max-trials", "3", "-f", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    with out.open() as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize(
    ("model", "protocol", "tensor_format"),
    [
        ("mlp", "grpc", "binary"),
        ("linear", "grpc", "binary"),
        ("mlp", "http", "binary"),
        ("linear", "http", "json"),
    ],
)
def test_perf_analyzer_runs_without_errors(
    server: Server, tmp_path: Path, model: str, protocol: str, tensor_format: str
) -> None:
    port = server.grpc_port if protocol == "grpc" else server.port
    args = ["-m", model, "-u", f"127.0.0.1:{port}", "-i", protocol]
    if model == "linear":
        args += ["--shape", "x:1"]  # its only dimension is the batch: give it one row
    if protocol == "http":
        args += ["--input-tensor-format", tensor_format, "--output-tensor-format", tensor_format]
    rows = perf_analyzer(args, tmp_path / "result.csv")
    assert sorted(int(r["Concurrency"]) for r in rows) == [1, 4]
    assert all(float(r["Inferences/Second"]) > 0 for r in rows)
    stats = httpx.get(f"{server.url}/v2/models/{model}/stats").json()["model_stats"][0]
    assert stats["inference_stats"]["fail"]["count"] == 0


@pytest.mark.parametrize("core", ["grpcio", "native"])
def test_perf_analyzer_streams_over_grpc(
    request: pytest.FixtureRequest, tmp_path: Path, core: str
) -> None:
    # One ModelStreamInfer stream per client thread, kept open for the whole run: the client
    # acknowledges every answer (WINDOW_UPDATE, PING) on a stream opened once.
    server: Server = request.getfixturevalue("server" if core == "native" else "grpcio_server")
    args = ["-m", "mlp", "-u", f"127.0.0.1:{server.grpc_port}", "-i", "grpc", "--streaming"]
    rows = perf_analyzer(args, tmp_path / "result.csv")
    assert sorted(int(r["Concurrency"]) for r in rows) == [1, 4]
    assert all(float(r["Inferences/Second"]) > 0 for r in rows)
    stats = httpx.get(f"{server.url}/v2/models/mlp/stats").json()["model_stats"][0]
    assert stats["inference_stats"]["fail"]["count"] == 0
