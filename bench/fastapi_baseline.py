"""inferd against a naive FastAPI server on the same ONNX models, in one run.

Run ``.venv/bin/python bench/fastapi_baseline.py`` (needs the ``bench`` extra: FastAPI).
See docs/performance.md ("inferd against a naive FastAPI server") for the numbers of a run.

In one run it:

1. builds a model repository in a temp folder: ``small`` (FP32 [-1, 16] -> 32 ReLU -> 1,
   built with ``onnx.helper`` like the examples) and the example ``mlp`` (and ``linear``);
2. starts the anchor, ``uvicorn _fastapi_app:app --workers N`` (bench/_fastapi_app.py: pydantic
   request models, one ``session.run`` per request, no batching), and ``inferd serve
   --workers N`` (batching on, the examples' settings), and with ``--before-src`` a second
   inferd from another source tree (the code before a change), and with ``--bare`` a
   fixed-answer ASGI app under inferd's front end (bench/_bare_app.py: the front end's floor);
3. checks one answer of every server against onnxruntime in this process;
4. for each round (``--repeat``) and model, drives each server in turn with wrk at
   ``--concurrency`` with the same V2 JSON body (after a warm-up), so a change in the
   machine's load hits every server of a round alike;
5. prints req/s, p99, errors, server CPU per request, other processes' load and the 1-minute
   load average per cell, and per model the ratio inferd / FastAPI of req/s and of CPU per
   request (medians over rounds), against the issue's goals (2.5x on ``small``, 2x on
   ``mlp``); writes ``bench/results/fastapi-<timestamp>.json``. The exit code is 0 whatever
   the numbers.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _report import Ratio, ratio_lines, write_json
from _server import Server, busy_cpu_seconds
from _wrk import Payload, payload, run_wrk, write_script
from serving import check, expected_output, machine, wait_quiet

HERE = Path(__file__).resolve().parent
SMALL_LAYERS = (16, 32, 1)
GOALS = {"small": 2.5, "mlp": 2.0}  # issue 11: inferd / FastAPI req/s at c=64, V2 JSON
BARE = "bare-asgi"  # not a model server: no answer check, no ratio
SMALL_YAML = """\
# 16 -> 32 (ReLU) -> 1. Written by bench/fastapi_baseline.py.
platform: onnx
max_batch_size: 64
inputs:
  - {name: x, datatype: FP32, shape: [-1, 16]}
outputs:
  - {name: y, datatype: FP32, shape: [-1, 1]}
batching:
  max_queue_delay_ms: 0
  max_queue_size: 4096
warmup:
  batch_sizes: [1, 64]
"""


class FastapiServer(Server):
    """The naive FastAPI anchor under ``uvicorn --workers N`` (same start/stop/CPU as inferd)."""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "_fastapi_app:app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip


class BareServer(Server):
    """bench/_bare_app.py: a fixed answer under inferd's front end (not a model server)."""

    def command(self) -> list[str]:
        return [sys.executable, "_bare_app.py", str(self.port), str(self.workers)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per cell (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per cell")
    parser.add_argument("--concurrency", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="--workers of every server")
    parser.add_argument("--models", default="small,mlp", help="comma list (small, mlp, linear)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; ratios are medians")
    parser.add_argument(
        "--before-src",
        type=Path,
        help="also serve inferd from this source tree (a `src` folder, e.g. from `git archive "
        "<commit> src | tar -x -C DIR`), as 'inferd/before', for a before/after in one run",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also drive a fixed-answer ASGI app under inferd's front end (bench/_bare_app.py):"
        " the front end's own cost per request",
    )
    parser.add_argument(
        "--inferd-args", default="", help="extra `inferd serve` flags, e.g. '--access-log'"
    )
    parser.add_argument("--quiet-timeout", type=float, default=5.0, help="wait for quiet cores")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="JSON record folder")
    return parser


def build_repository(root: Path) -> Path:
    """The examples (``linear``, ``mlp``) plus ``small``, a 16 -> 32 -> 1 ReLU MLP."""
    import onnx
    from onnx import helper, numpy_helper

    from inferd.serving.examples import IR_VERSION, OPSET, ensure_examples

    repo = ensure_examples(root / "repo")
    rng = np.random.default_rng(1)
    (w0, w1), (b0, b1) = (
        (rng.standard_normal(s).astype(np.float32) for s in ((16, 32), (32, 1))),
        (rng.standard_normal(s).astype(np.float32) * 0.1 for s in ((32,), (1,))),
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W0"], ["h0"]),
            helper.make_node("Add", ["h0", "b0"], ["z0"]),
            helper.make_node("Relu", ["z0"], ["a0"]),
            helper.make_node("MatMul", ["a0", "W1"], ["h1"]),
            helper.make_node("Add", ["h1", "b1"], ["y"]),
        ],
        "small",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", SMALL_LAYERS[0]])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", SMALL_LAYERS[-1]])],
        [
            numpy_helper.from_array(a, n)
            for a, n in ((w0, "W0"), (b0, "b0"), (w1, "W1"), (b1, "b1"))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    (repo / "small" / "1").mkdir(parents=True, exist_ok=True)
    (repo / "small" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    (repo / "small" / "model.yaml").write_text(SMALL_YAML)
    return repo


def model_x(model: str) -> np.ndarray | None:
    """The input of ``small`` (16 floats, seed 2); None: bench/_wrk.py's for the others."""
    if model != "small":
        return None
    return np.random.default_rng(2).standard_normal((1, SMALL_LAYERS[0])).astype(np.float32)


def expected(model: str, repo: Path) -> np.ndarray:
    """What ``model`` must answer, computed with onnxruntime in this process."""
    x = model_x(model)
    if x is None:
        return expected_output(model, repo)
    import onnxruntime as ort

    session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"))
    return np.asarray(session.run(None, {"x": x})[0])


@dataclass(frozen=True, slots=True)
class Cell:
    """One timed wrk run of one server on one model."""

    server: str
    model: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us_per_req: float
    wrk_cpu_us_per_req: float
    other_cores: float
    load1: float  # 1-minute load average (uptime) at the end of the run


def measure(
    name: str, server: Server, model: str, script: Path, rnd: int, args: argparse.Namespace
) -> Cell:
    """Warm up, wait for quiet cores, then one timed run (errors of both runs count)."""
    url = f"{server.base_url}/v2/models/{model}/infer"
    warm = run_wrk(url, script, args.concurrency, args.warmup, 1)
    wait_quiet(server, args.quiet_timeout)
    busy0, cpu0 = busy_cpu_seconds(), server.cpu_seconds()
    result = run_wrk(url, script, args.concurrency, args.duration, 1)
    busy1, cpu1 = busy_cpu_seconds(), server.cpu_seconds()
    done = max(result.requests, 1)
    other = (busy1 - busy0) - (cpu1 - cpu0) - result.cpu_s
    return Cell(
        server=name,
        model=model,
        round=rnd,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=warm.errors + result.errors,
        server_cpu_us_per_req=(cpu1 - cpu0) / done * 1e6,
        wrk_cpu_us_per_req=result.cpu_s / done * 1e6,
        other_cores=max(0.0, other) / max(result.duration_s, 1e-9),
        load1=os.getloadavg()[0],
    )


def start_servers(
    servers: dict[str, Server], repo: Path, root: Path, args: argparse.Namespace
) -> None:
    """Start the anchor and inferd (and inferd from ``--before-src``) into ``servers``, so
    that a failed start still leaves the started ones there to stop."""
    anchor = FastapiServer(repo, args.workers, root / "fastapi")
    anchor.cwd = HERE
    anchor.extra_env = {"FASTAPI_BENCH_REPOSITORY": str(repo)}
    servers["fastapi"] = anchor
    trees = {"inferd": None} if args.before_src is None else {
        "inferd/before": args.before_src.resolve(), "inferd": None,
    }  # fmt: skip
    for name, src in trees.items():
        server = Server(repo, args.workers, root / name.replace("/", "-"))
        server.extra_args = shlex.split(args.inferd_args)
        if src is not None:
            server.extra_env = {"PYTHONPATH": str(src)}
        servers[name] = server
    if args.bare:
        bare = BareServer(repo, args.workers, root / "bare")
        bare.cwd = HERE
        servers[BARE] = bare
    for server in servers.values():
        server.start()


def _per_round(cells: Sequence[Cell], server: str, model: str) -> list[tuple[Cell, Cell]]:
    anchor = {c.round: c for c in cells if c.server == "fastapi" and c.model == model}
    return [
        (c, anchor[c.round])
        for c in cells
        if c.server == server and c.model == model and c.round in anchor
    ]


def ratios(cells: Sequence[Cell]) -> list[Ratio]:
    """Per inferd server and model: req/s over FastAPI's (the goal), and FastAPI's CPU per
    request over inferd's, server and wrk together (info), medians over rounds; then errors.

    The CPU ratio is what the req/s ratio comes to when both are CPU-bound on the same cores.
    On a shared machine it moves less: the scheduler shares cores by thread, and inferd runs
    more threads than the anchor, so other processes' load shifts req/s between the two.
    """
    out: list[Ratio] = []
    for server in dict.fromkeys(c.server for c in cells if c.server not in ("fastapi", BARE)):
        for model in dict.fromkeys(c.model for c in cells):
            pairs = _per_round(cells, server, model)
            if not pairs:
                continue
            goal = GOALS.get(model)
            target = "-" if goal is None else f">= {goal:g}"
            rps = [c.rps / a.rps if a.rps else 0.0 for c, a in pairs]
            value = statistics.median(rps)
            detail = "rounds " + ", ".join(f"{r:.2f}" for r in rps)
            name = f"{server} / fastapi req/s, {model}"
            out.append(Ratio(name, value, target, None if goal is None else value >= goal, detail))
            cpu = [
                (a.server_cpu_us_per_req + a.wrk_cpu_us_per_req)
                / max(c.server_cpu_us_per_req + c.wrk_cpu_us_per_req, 1e-9)
                for c, a in pairs
            ]
            detail = "rounds " + ", ".join(f"{r:.2f}" for r in cpu)
            name = f"{server} / fastapi, CPU per request (server + wrk), {model}"
            out.append(Ratio(name, statistics.median(cpu), target + " (info)", None, detail))
    errors = sum(c.errors for c in cells)
    out.append(
        Ratio("errors in all runs, warm-ups included", float(errors), "== 0", errors == 0, "")
    )
    return out


def report(cells: Sequence[Cell], args: argparse.Namespace, started: str) -> None:
    """Print the cells and the ratios; write the JSON record."""
    print("\n| server | model | round | req/s | p50 ms | p99 ms | errors | server CPU µs/req "
          "| wrk CPU µs/req | other load | load1 |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cells:
        print(
            f"| {c.server} | {c.model} | {c.round} | {c.rps:,.0f} | {c.p50_ms:.2f} | "
            f"{c.p99_ms:.2f} | {c.errors} | {c.server_cpu_us_per_req:.0f} | "
            f"{c.wrk_cpu_us_per_req:.0f} | {c.other_cores:.2f} | {c.load1:.2f} |"
        )
    found = ratios(cells)
    print(f"\nc={args.concurrency}, --workers {args.workers}, V2 JSON, medians of "
          f"{args.repeat} rounds:")  # fmt: skip
    print(ratio_lines(found))
    load = [c.load1 for c in cells]
    print(f"load average (1 min) during the run: {min(load):.2f} to {max(load):.2f}")
    if max(load) >= 1.0:
        print("NOTE: the machine was not quiet (1-minute load >= 1); req/s ratios move with "
              "other processes' load, the CPU ratios less so.")  # fmt: skip
    path = args.out / f"fastapi-{started}.json"
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(path, started=started, machine=machine(), settings=settings, cells=list(cells),
               ratios=found)  # fmt: skip
    print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.strftime("%Y%m%d-%H%M%S")
    models = [m for m in args.models.split(",") if m]
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="inferd-fastapi-") as tmp:
        root = Path(tmp)
        repo = build_repository(root)
        servers: dict[str, Server] = {}
        try:
            start_servers(servers, repo, root, args)
            scripts: dict[str, Path] = {}
            for model in models:
                request: Payload = payload(model, "json", model_x(model))
                for name, server in servers.items():
                    if name != BARE:
                        check(server, model, request, expected(model, repo))
                scripts[model] = write_script(root, f"{model}-json", request, False)
            for rnd in range(args.repeat):
                for model in models:
                    for name, server in servers.items():
                        cell = measure(name, server, model, scripts[model], rnd, args)
                        print(f"  round {rnd} {model:6} {name:16} {cell.rps:9,.0f} req/s  "
                              f"p99 {cell.p99_ms:6.2f} ms  errors {cell.errors}  "
                              f"cpu {cell.server_cpu_us_per_req:4.0f} µs/req  "
                              f"load1 {cell.load1:.2f}", flush=True)  # fmt: skip
                        cells.append(cell)
        finally:
            for server in servers.values():
                server.stop()
    report(cells, args, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
