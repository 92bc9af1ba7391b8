"""gRPC vs HTTP benchmark: req/s and p99 of gRPC, HTTP binary and HTTP JSON, in one run.

Run ``.venv/bin/python bench/grpc_vs_http.py`` (after ``make perf-analyzer bench-tools``);
``--quick`` for 2 s cells; ``--grpc-transport grpcio|native|both`` picks the gRPC core (the
default ``grpcio``; ``both`` serves with one, then the other, in one run). It serves the
example repository (``linear``, ``mlp``) with one ``inferd serve`` and measures every
(model, protocol) cell at concurrency 64 twice:

- with Triton's ``perf_analyzer`` (gRPC unary, gRPC streaming, HTTP binary, HTTP JSON);
- with the project's own load generators, C programs that spend little of the shared CPU:
  wrk for HTTP (``bench/_wrk.py``) and h2load for unary gRPC (``bench/_h2load.py``); and, for
  context, a closed-loop Python grpcio client (``bench/_grpcload.py``), whose own CPU cost
  on the same two cores caps what it can measure.

Each cell also records the server's CPU per request and the mean batch size. It prints the
table, the issue's target (gRPC >= HTTP JSON for ``mlp``) per core, grpcio against native
for each gRPC cell when both ran, and writes
``bench/results/grpc-<timestamp>.json``. The exit code is 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypeVar

from _h2load import H2loadResult, run_h2load
from _server import Server
from _wrk import MARKER, payload, run_wrk, write_script

HERE = Path(__file__).resolve().parent
PERF_DIR = HERE.parent / ".venv" / "perf_analyzer"
MODELS = ("linear", "mlp")
PA_PROTOCOLS = ("grpc", "grpc-stream", "http-binary", "http-json")
OWN_PROTOCOLS = ("grpc", "http-binary", "http-json", "grpc-python")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """One measured cell."""

    tool: str
    model: str
    protocol: str
    concurrency: int
    rps: float
    p99_ms: float
    errors: int
    server_cpu_us_per_req: float
    mean_batch: float | None
    core: str = "grpcio"


def _perf_command(server: Server, model: str, protocol: str, args: argparse.Namespace) -> list[str]:
    grpc = protocol.startswith("grpc")
    port = server.grpc_port if grpc else server.port
    command = [
        str(PERF_DIR / "bin" / "perf_analyzer"), "-m", model, "-u", f"127.0.0.1:{port}",
        "-i", "grpc" if grpc else "http", "--concurrency-range", str(args.concurrency),
        "--measurement-interval", str(args.seconds * 1000), "--stability-percentage", "1000",
        "--max-trials", "3",
    ]  # fmt: skip
    if model == "linear":
        command += ["--shape", "x:1"]
    if protocol == "grpc-stream":
        command.append("--streaming")
    if not grpc:
        fmt = protocol.removeprefix("http-")
        command += ["--input-tensor-format", fmt, "--output-tensor-format", fmt]
    return command


def measured(server: Server, model: str, run: Callable[[], T]) -> tuple[T, float, float | None]:
    """Run ``run()``; return its result, the server's CPU µs per answered request and the
    mean batch size over that time."""
    c0, cpu0 = server.counters(model), server.cpu_seconds()
    result = run()
    c1, cpu1 = server.counters(model), server.cpu_seconds()
    answered = max(c1["ok"] + c1["non2xx"] - c0["ok"] - c0["non2xx"], 1)
    calls = c1["calls"] - c0["calls"]
    batch = (c1["rows"] - c0["rows"]) / calls if calls else None
    return result, (cpu1 - cpu0) / answered * 1e6, batch


def perf_analyzer_cell(
    server: Server, model: str, protocol: str, args: argparse.Namespace, out: Path
) -> Row:
    env = {**os.environ, "LD_LIBRARY_PATH": str(PERF_DIR / "nvidia" / "cuda_runtime" / "lib")}
    command = [*_perf_command(server, model, protocol, args), "-f", str(out)]

    def run() -> subprocess.CompletedProcess[str]:
        # perf_analyzer waits forever for answers that never come: bound it, count a failure.
        limit = 30 + 6 * args.seconds  # warm-up and up to 3 trials, with room to spare
        try:
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(command, 124, "", f"no result in {limit} s")

    done, cpu, batch = measured(server, model, run)
    errors = int(done.returncode != 0 or "error" in (done.stdout + done.stderr).lower())
    rows = list(csv.DictReader(out.open())) if out.exists() else []
    if errors or not rows:
        print(f"  perf_analyzer failed: {(done.stdout + done.stderr)[-600:]}", flush=True)
        return Row("perf_analyzer", model, protocol, args.concurrency, 0.0, 0.0, 1, cpu, batch)
    row = rows[-1]
    return Row(
        "perf_analyzer", model, protocol, args.concurrency, float(row["Inferences/Second"]),
        float(row["p99 latency"]) / 1000, errors, cpu, batch,
    )  # fmt: skip


def own_cell(server: Server, model: str, protocol: str, args: argparse.Namespace, tmp: Path) -> Row:
    """One cell measured with the project's own load generators."""
    if protocol == "grpc":
        return _h2load_cell(server, model, args, tmp)
    if protocol == "grpc-python":
        return _python_grpc_cell(server, model, args)
    fmt = protocol.removeprefix("http-")
    script = write_script(tmp, f"{model}-{fmt}", payload(model, fmt), False)
    url = f"{server.base_url}/v2/models/{model}/infer"
    wrk, cpu, batch = measured(
        server, model, lambda: run_wrk(url, script, args.concurrency, args.seconds, 1)
    )
    return Row("own (wrk)", model, protocol, args.concurrency, wrk.rps, wrk.p99_ms, wrk.errors,
               cpu, batch)  # fmt: skip


def _h2load_cell(server: Server, model: str, args: argparse.Namespace, tmp: Path) -> Row:
    target = f"127.0.0.1:{server.grpc_port}"

    def run() -> tuple[H2loadResult, float]:
        before = server.counters(model)["non2xx"]
        result = run_h2load(target, model, args.concurrency, args.seconds, tmp)
        return result, server.counters(model)["non2xx"] - before  # gRPC errors: in trailers

    (h2, refused), cpu, batch = measured(server, model, run)
    return Row("own (h2load)", model, "grpc", args.concurrency, h2.rps, h2.p99_ms,
               h2.failed + int(refused), cpu, batch)  # fmt: skip


def _python_grpc_cell(server: Server, model: str, args: argparse.Namespace) -> Row:
    command = [
        sys.executable, str(HERE / "_grpcload.py"), f"127.0.0.1:{server.grpc_port}", model,
        str(args.concurrency), str(args.seconds),
    ]  # fmt: skip

    def run() -> dict[str, float]:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=HERE)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)), None)
        if line is None:
            raise RuntimeError(f"_grpcload failed: {done.stderr[-600:]}")
        return dict(json.loads(line[len(MARKER) :]))

    result, cpu, batch = measured(server, model, run)
    rps = result["requests"] / result["duration_s"]
    return Row("own (python)", model, "grpc", args.concurrency, rps, result["p99_ms"],
               int(result["errors"]), cpu, batch)  # fmt: skip


def report(rows: list[Row]) -> list[str]:
    lines = [
        f"{'core':6} {'tool':14} {'model':6} {'protocol':12} {'req/s':>9} {'p99 ms':>8} "
        f"{'errors':>6} {'cpu µs/req':>10} {'batch':>6}"
    ]
    for r in rows:
        batch = f"{r.mean_batch:6.1f}" if r.mean_batch is not None else "     -"
        lines.append(
            f"{r.core:6} {r.tool:14} {r.model:6} {r.protocol:12} {r.rps:9,.0f} {r.p99_ms:8.2f} "
            f"{r.errors:6d} {r.server_cpu_us_per_req:10.0f} {batch}"
        )
    cells = {(r.core, r.tool, r.model, r.protocol): r for r in rows}
    cores = sorted({r.core for r in rows})
    for core in cores:
        for name, grpc_tool, http_tool in (
            ("perf_analyzer", "perf_analyzer", "perf_analyzer"),
            ("own", "own (h2load)", "own (wrk)"),
        ):
            grpc = cells.get((core, grpc_tool, "mlp", "grpc"))
            json_ = cells.get((core, http_tool, "mlp", "http-json"))
            if grpc and json_ and json_.rps:
                ratio = grpc.rps / json_.rps
                verdict = "PASS" if ratio >= 1 else "FAIL"
                lines.append(
                    f"target [{core}, {name}] mlp gRPC >= HTTP JSON req/s: {ratio:.2f}x {verdict}"
                )
    if len(cores) == 2:
        lines += _cores_compared(rows, cells)
    return lines


def _cores_compared(rows: list[Row], cells: dict[tuple[str, str, str, str], Row]) -> list[str]:
    """grpcio against native for each gRPC cell: req/s and server CPU per request."""
    lines = []
    for r in rows:
        other = cells.get(("native", r.tool, r.model, r.protocol))
        if r.core != "grpcio" or not r.protocol.startswith("grpc") or other is None:
            continue
        if other.rps and other.server_cpu_us_per_req:
            rps = r.rps / other.rps
            cpu = r.server_cpu_us_per_req / other.server_cpu_us_per_req
            lines.append(
                f"grpcio/native {r.tool:14} {r.model:6} {r.protocol:12} req/s {rps:5.2f}x, "
                f"server cpu/req {cpu:5.2f}x"
            )
    return lines


def serve_cells(server: Server, core: str, args: argparse.Namespace, tmp: Path) -> list[Row]:
    """Every (model, protocol) cell against ``server``, printed as it is measured."""
    rows: list[Row] = []
    for model in MODELS:
        for protocol in PA_PROTOCOLS:
            cell = perf_analyzer_cell(server, model, protocol, args, tmp / "pa.csv")
            rows.append(replace(cell, core=core))
            print("  " + report([rows[-1]])[1], flush=True)
        for protocol in OWN_PROTOCOLS:
            rows.append(replace(own_cell(server, model, protocol, args, tmp), core=core))
            print("  " + report([rows[-1]])[1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=5, help="seconds per cell (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 s cells")
    parser.add_argument(
        "--grpc-transport", choices=("grpcio", "native", "both"), default="grpcio",
        help="the gRPC core to serve with (default grpcio); both: one, then the other",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 2
    from inferd.serving.examples import ensure_examples

    both = args.grpc_transport == "both"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="inferd-bench-grpc-") as name:
        tmp = Path(name)
        repo = ensure_examples(tmp / "repo")
        for core in ("grpcio", "native") if both else (args.grpc_transport,):
            # The server process takes its settings from the environment it inherits.
            os.environ["INFERD_GRPC_TRANSPORT"] = core
            with Server(repo, 1, tmp / f"home-{core}") as server:
                rows += serve_cells(server, core, args, tmp)
    print("\n".join(report(rows)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"grpc-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"rows": [asdict(r) for r in rows], "args": vars(args)},
                               default=str, indent=1))  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
