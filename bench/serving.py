"""Serving benchmark: throughput, latency, errors and server CPU per request, with wrk.

Run ``.venv/bin/python bench/serving.py`` (or ``make bench``; ``make bench ARGS=--quick``).
See docs/performance.md for what it measures and the numbers of a run.

In one run it:

1. builds the example repository (``linear``, ``mlp``) in a temp folder, plus a copy whose
   ``mlp`` has ``max_batch_size: 1`` (dynamic batching off, everything else identical);
2. measures raw onnxruntime samples/s for ``mlp`` in this process, with the server's session
   options and with onnxruntime's defaults, at batch sizes 1 to 128;
3. starts ``inferd serve`` with ``--workers 1`` and ``--workers 2`` (batching on) and drives
   each (model, V2 JSON / V2 binary, concurrency) cell with wrk after a warm-up;
4. starts the batching-off server with the workers count of the best batching-on ``mlp``
   server and measures ``mlp`` again;
5. prints the table and the issue's targets (PASS/FAIL) and writes
   ``bench/results/serving-<timestamp>.json``. The exit code is 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
from _raw import RawPoint, measure
from _report import Cell, ratio_lines, ratios, raw_table, table, write_json
from _server import Server, busy_cpu_seconds, describe
from _wrk import (
    MLP_FEATURES,
    Payload,
    WrkResult,
    model_input,
    payload,
    run_wrk,
    write_script,
)

MODELS = ("linear", "mlp")
PROTOCOLS = ("json", "binary")
RESULTS = Path(__file__).resolve().parent / "results"
# Other processes' load (in cores) under which a cell starts without waiting.
QUIET_CORES = 0.25
# Other processes' load (in cores) during a timed run above which the report warns.
DISTURBED_CORES = 0.25


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per cell")
    parser.add_argument(
        "--quick", action="store_true", help="concurrency 1 and 64 only, 2 s cells (~1.5 min)"
    )
    parser.add_argument("--concurrency", default="1,16,64", help="comma list (default 1,16,64)")
    parser.add_argument("--workers", default="1,2", help="batching-on servers (default 1,2)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed runs per cell; the one with the least load from other processes is "
        "reported (default 1)",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--raw-seconds", type=float, default=1.0, help="per raw batch size")
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=5.0,
        help="seconds to wait before each cell for other processes to leave the CPU "
        "(default 5; 2 with --quick)",
    )
    parser.add_argument(
        "--count-all-status",
        action="store_true",
        help="count 1xx/3xx as errors in wrk's Lua too (costs wrk CPU; the server's own "
        "non-2xx count is always added)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON record")
    return parser


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_repositories(root: Path) -> tuple[Path, Path]:
    """The example repository and its copy with batching off for ``mlp``."""
    from inferd.serving.examples import ensure_examples

    on = ensure_examples(root / "repo-batching-on")
    off = root / "repo-mlp-batching-off"
    shutil.copytree(on, off)
    config = off / "mlp" / "model.yaml"
    text = config.read_text()
    lines = [
        "max_batch_size: 1" if line.startswith("max_batch_size:") else line
        for line in text.splitlines()
    ]
    if lines == text.splitlines():
        raise RuntimeError(f"{config}: no max_batch_size line to turn batching off")
    config.write_text("\n".join(lines) + "\n")
    return on, off


def expected_output(model: str, repository: Path) -> np.ndarray:
    """What the model must answer for ``model_input(model)``, computed in process."""
    x = model_input(model)
    if model == "linear":
        return 2 * x + 1
    import onnxruntime as ort

    session = ort.InferenceSession(str(repository / model / "1" / "model.onnx"))
    return np.asarray(session.run(None, {"x": x})[0])


def check(server: Server, model: str, request: Payload, expected: np.ndarray) -> None:
    """Send one request and compare the answer with ``expected``.

    Raises:
        RuntimeError: the status is not 200 or the output is wrong.
    """
    path = f"/v2/models/{model}/infer"
    status, body, headers = server.request("POST", path, request.body, request.headers)
    if status != 200:
        raise RuntimeError(f"{model}: HTTP {status} {describe(body)}")
    length = headers.get("inference-header-content-length")
    head = json.loads(body if length is None else body[: int(length)])
    output = head["outputs"][0]
    if length is None:
        got = np.asarray(output["data"], dtype=np.float32)
    else:
        got = np.frombuffer(body[int(length) :], dtype="<f4")
    if list(output["shape"]) != list(expected.shape) or not np.allclose(
        got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4
    ):
        raise RuntimeError(f"{model}: wrong answer {describe(body)}")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def other_load(server: Server | None, seconds: float = 0.5) -> float:
    """Cores kept busy by processes other than the server and this one over ``seconds``."""

    def server_cpu() -> float:
        return server.cpu_seconds() if server is not None else 0.0

    busy0, server0, own0 = busy_cpu_seconds(), server_cpu(), _own_cpu_seconds()
    time.sleep(seconds)
    busy1, server1, own1 = busy_cpu_seconds(), server_cpu(), _own_cpu_seconds()
    return max(0.0, (busy1 - busy0) - (server1 - server0) - (own1 - own0)) / seconds


def wait_quiet(server: Server | None, limit_s: float) -> float:
    """Wait up to ``limit_s`` for other processes to leave the cores; returns their load."""
    deadline = time.monotonic() + limit_s
    while (load := other_load(server)) > QUIET_CORES and time.monotonic() < deadline:
        pass
    return load


@dataclass(frozen=True, slots=True)
class _Run:
    """One timed wrk run and what the server and the machine did meanwhile."""

    result: WrkResult
    server_cpu_s: float
    other_cores: float
    server_non2xx: int
    rows: float
    calls: float

    @property
    def errors(self) -> int:
        # A 5xx is seen by wrk and by the server's counter: count it once.
        return self.result.socket_errors + max(self.result.non2xx, self.server_non2xx)


def timed_run(
    server: Server, model: str, script: Path, concurrency: int, seconds: int, threads: int
) -> _Run:
    """One wrk run with the server's CPU, non-2xx answers and batch sizes around it."""
    url = f"{server.base_url}/v2/models/{model}/infer"
    c0 = server.counters(model)
    busy0, cpu0, own0 = busy_cpu_seconds(), server.cpu_seconds(), _own_cpu_seconds()
    result = run_wrk(url, script, concurrency, seconds, threads)
    busy1, cpu1, own1 = busy_cpu_seconds(), server.cpu_seconds(), _own_cpu_seconds()
    c1 = server.counters(model)
    other = (busy1 - busy0) - (cpu1 - cpu0) - result.cpu_s - (own1 - own0)
    return _Run(
        result=result,
        server_cpu_s=cpu1 - cpu0,
        other_cores=max(0.0, other) / max(result.duration_s, 1e-9),
        server_non2xx=int(c1["non2xx"] - c0["non2xx"]),
        rows=c1["rows"] - c0["rows"],
        calls=c1["calls"] - c0["calls"],
    )


def measure_cell(
    server: Server, model: str, protocol: str, script: Path, concurrency: int,
    args: argparse.Namespace, request: Payload, batching: bool, checked: str,
) -> Cell:  # fmt: skip
    """Warm up, then ``args.repeat`` timed runs; reports the run least disturbed by others.

    Errors of the warm-up and of the runs not reported still count (``other_run_errors``).
    """
    warm = timed_run(server, model, script, concurrency, args.warmup, args.wrk_threads)
    runs = []
    for _ in range(args.repeat):
        wait_quiet(server, args.quiet_timeout)
        runs.append(timed_run(server, model, script, concurrency, args.duration, args.wrk_threads))
    run = min(runs, key=lambda r: r.other_cores)
    result, done = run.result, max(run.result.requests, 1)
    return Cell(
        model=model,
        protocol=protocol,
        workers=server.workers,
        batching=batching,
        concurrency=concurrency,
        requests=result.requests,
        rps=result.rps,
        samples_per_s=result.rps * request.rows,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        errors=run.errors,
        other_run_errors=warm.errors + sum(r.errors for r in runs) - run.errors,
        socket_errors=result.socket_errors,
        wrk_non2xx=result.non2xx,
        server_non2xx=run.server_non2xx,
        server_cpu_us_per_req=run.server_cpu_s / done * 1e6,
        wrk_cpu_us_per_req=result.cpu_s / done * 1e6,
        other_cpu_cores=run.other_cores,
        mean_batch=run.rows / run.calls if run.calls else None,
        runs_rps=[r.result.rps for r in runs],
        check=checked,
    )


def run_server(
    server: Server,
    models: Sequence[str],
    concurrencies: Sequence[int],
    scripts: Path,
    expected: dict[str, np.ndarray],
    args: argparse.Namespace,
    batching: bool = True,
) -> list[Cell]:
    """Every (model, protocol, concurrency) cell on one running server."""
    cells = []
    for model in models:
        for protocol in PROTOCOLS:
            request = payload(model, protocol)
            checked = "ok"
            try:
                check(server, model, request, expected[model])
            except (RuntimeError, ValueError, KeyError) as err:
                checked = str(err)
                print(f"  CHECK FAILED {model} {protocol}: {checked}", flush=True)
            script = write_script(scripts, f"{model}-{protocol}", request, args.count_all_status)
            for concurrency in concurrencies:
                cell = measure_cell(
                    server,
                    model,
                    protocol,
                    script,
                    concurrency,
                    args,
                    request,
                    batching or model != "mlp",
                    checked,
                )
                print(
                    f"  {model:6} {protocol:6} w{server.workers} "
                    f"{'on ' if cell.batching else 'off'} c={concurrency:<3} "
                    f"{cell.rps:9,.0f} req/s  p50 {cell.p50_ms:6.2f} ms  "
                    f"p99 {cell.p99_ms:6.2f} ms  errors {cell.errors + cell.other_run_errors}  "
                    f"cpu {cell.server_cpu_us_per_req:5.0f} µs/req",
                    flush=True,
                )
                cells.append(cell)
    return cells


def machine() -> dict[str, object]:
    """Where the run happened: CPU, cores, versions, commit."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            cpu = next((ln.split(":", 1)[1].strip() for ln in file if "model name" in ln), "")
    except OSError:
        pass
    import onnxruntime

    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "",
        "commit": git.stdout.strip(),
        "note": "server and wrk share the same cores",
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    concurrencies = _ints(args.concurrency)
    if args.quick:
        concurrencies = [c for c in concurrencies if c in (1, 64)] or [1, 64]
        args.duration = min(args.duration, 2)
        args.quiet_timeout = min(args.quiet_timeout, 2.0)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="inferd-bench-") as tmp:
        root = Path(tmp)
        on_repo, off_repo = build_repositories(root)
        print("raw onnxruntime, mlp, in process:", flush=True)
        wait_quiet(None, args.quiet_timeout)
        raw = measure(on_repo / "mlp" / "1" / "model.onnx", MLP_FEATURES, args.raw_seconds)
        print(raw_table(raw), flush=True)
        expected = {m: expected_output(m, on_repo) for m in MODELS}
        cells: list[Cell] = []
        for workers in _ints(args.workers):
            print(f"server --workers {workers}, batching on:", flush=True)
            with _server(
                on_repo, workers, root / f"on-{workers}", args.out / f"serving-{started}"
            ) as server:
                cells += run_server(server, MODELS, concurrencies, root, expected, args)
        pair = _best_workers(cells)
        if pair is not None:
            print(f"server --workers {pair}, mlp batching off:", flush=True)
            off_conc = [64] if args.quick else concurrencies
            with _server(
                off_repo, pair, root / f"off-{pair}", args.out / f"serving-{started}"
            ) as server:
                cells += run_server(server, ["mlp"], off_conc, root, expected, args, False)
    return _report(cells, raw, pair, args, started)


@contextlib.contextmanager
def _server(repository: Path, workers: int, home: Path, log_prefix: Path) -> Iterator[Server]:
    """A running server whose log is kept as ``<log_prefix>-server-<home name>.log``."""
    server = Server(repository, workers, home)
    try:
        with server:
            yield server
    finally:
        log_prefix.parent.mkdir(parents=True, exist_ok=True)
        log = log_prefix.with_name(f"{log_prefix.name}-server-{home.name}.log")
        log.write_text(server.log(tail=10_000_000))


def _best_workers(cells: Sequence[Cell]) -> int | None:
    """Workers count of the batching-on server with the best mlp c=64 V2 JSON throughput."""
    candidates = [
        c for c in cells if c.model == "mlp" and c.protocol == "json" and c.concurrency == 64
    ]
    return max(candidates, key=lambda c: c.rps).workers if candidates else None


def _report(
    cells: list[Cell],
    raw: list[RawPoint],
    pair: int | None,
    args: argparse.Namespace,
    started: str,
) -> int:
    results = ratios(cells, raw, pair)
    print("\nresults (errors: every run of the cell, warm-up included):")
    print(table(cells))
    best = max(raw, key=lambda p: p.samples_per_s)
    print(
        f"\nraw onnxruntime best: {best.samples_per_s:,.0f} samples/s "
        f"({best.threads}, batch {best.batch_size})"
    )
    print("\ntargets:")
    print(ratio_lines(results))
    path = args.out / f"serving-{started}.json"
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(
        path,
        started=started,
        machine=machine(),
        settings=settings,
        raw=raw,
        cells=cells,
        pair_workers=pair,
        ratios=results,
    )
    print(f"\nwrote {path}")
    raw_disturbed = [p for p in raw if p.other_cores > DISTURBED_CORES]
    if raw_disturbed:
        print(
            f"WARNING: {len(raw_disturbed)} of {len(raw)} raw onnxruntime points (marked *) ran "
            f"while other processes kept more than {DISTURBED_CORES} cores busy; a low raw best "
            "inflates served/raw."
        )
    disturbed = [c for c in cells if c.other_cpu_cores > DISTURBED_CORES]
    if disturbed:
        print(
            f"WARNING: {len(disturbed)} of {len(cells)} cells ran while other processes kept more "
            f"than {DISTURBED_CORES} cores busy (column 'other load'); their numbers understate "
            "the server. Re-run on a quiet machine, or with --repeat 3 --quiet-timeout 30."
        )
    failed = [r for r in results if r.passed is False]
    print(f"{len(failed)} target(s) missed" if failed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
