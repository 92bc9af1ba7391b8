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
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import numpy as np
from _raw import RawPoint, measure
from _report import Cell, ratio_lines, ratios, raw_table, table, write_json
from _server import Server, describe
from _wrk import MLP_FEATURES, Payload, model_input, payload, run_wrk, write_script

MODELS = ("linear", "mlp")
PROTOCOLS = ("json", "binary")
RESULTS = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per cell")
    parser.add_argument(
        "--quick", action="store_true", help="concurrency 1 and 64 only, 2 s cells (~1.5 min)"
    )
    parser.add_argument("--concurrency", default="1,16,64", help="comma list (default 1,16,64)")
    parser.add_argument("--workers", default="1,2", help="batching-on servers (default 1,2)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--raw-seconds", type=float, default=1.0, help="per raw batch size")
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


def measure_cell(
    server: Server,
    model: str,
    protocol: str,
    script: Path,
    concurrency: int,
    args: argparse.Namespace,
    rows_per_request: int,
    batching: bool,
    checked: str,
) -> Cell:
    """Warm up, then one timed wrk run with server CPU and batch sizes around it."""
    url = f"{server.base_url}/v2/models/{model}/infer"
    warm = run_wrk(url, script, concurrency, args.warmup, args.wrk_threads)
    rows0, calls0 = server.batch_totals(model)
    cpu0 = server.cpu_seconds()
    result = run_wrk(url, script, concurrency, args.duration, args.wrk_threads)
    cpu1 = server.cpu_seconds()
    rows1, calls1 = server.batch_totals(model)
    done = max(result.requests, 1)
    return Cell(
        model=model,
        protocol=protocol,
        workers=server.workers,
        batching=batching,
        concurrency=concurrency,
        requests=result.requests,
        rps=result.rps,
        samples_per_s=result.rps * rows_per_request,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        errors=result.errors,
        warmup_errors=warm.errors,
        server_cpu_us_per_req=(cpu1 - cpu0) / done * 1e6,
        wrk_cpu_us_per_req=result.cpu_s / done * 1e6,
        mean_batch=(rows1 - rows0) / (calls1 - calls0) if calls1 > calls0 else None,
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
            script = write_script(scripts, f"{model}-{protocol}", request)
            for concurrency in concurrencies:
                cell = measure_cell(
                    server,
                    model,
                    protocol,
                    script,
                    concurrency,
                    args,
                    request.rows,
                    batching or model != "mlp",
                    checked,
                )
                print(
                    f"  {model:6} {protocol:6} w{server.workers} "
                    f"{'on ' if cell.batching else 'off'} c={concurrency:<3} "
                    f"{cell.rps:9,.0f} req/s  p50 {cell.p50_ms:6.2f} ms  "
                    f"p99 {cell.p99_ms:6.2f} ms  errors {cell.errors + cell.warmup_errors}  "
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
    signal.signal(signal.SIGTERM, _terminate)
    started = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="inferd-bench-") as tmp:
        root = Path(tmp)
        on_repo, off_repo = build_repositories(root)
        print("raw onnxruntime, mlp, in process:", flush=True)
        raw = measure(on_repo / "mlp" / "1" / "model.onnx", MLP_FEATURES, args.raw_seconds)
        print(raw_table(raw), flush=True)
        expected = {m: expected_output(m, on_repo) for m in MODELS}
        cells: list[Cell] = []
        for workers in _ints(args.workers):
            print(f"server --workers {workers}, batching on:", flush=True)
            with Server(on_repo, workers, root / f"home-on-{workers}") as server:
                cells += run_server(server, MODELS, concurrencies, root, expected, args)
        pair = _best_workers(cells)
        if pair is not None:
            print(f"server --workers {pair}, mlp batching off:", flush=True)
            off_conc = [64] if args.quick else concurrencies
            with Server(off_repo, pair, root / f"home-off-{pair}") as server:
                cells += run_server(server, ["mlp"], off_conc, root, expected, args, False)
    return _report(cells, raw, pair, args, started)


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
    print("\nresults (errors include the warm-up run):")
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
    failed = [r for r in results if r.passed is False]
    print(f"{len(failed)} target(s) missed" if failed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
