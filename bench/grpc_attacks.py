"""The gRPC attack suite, measured: each attack beside a legitimate client, per gRPC transport.

Run ``.venv/bin/python bench/grpc_attacks.py`` (about 3 minutes; ``--duration 8`` seconds
per attack by default, ``--attacks rapid_reset,ping_flood`` for a few). For each transport it
starts ``inferd serve --workers 1`` on the example models (free ports, a temp INFERD_HOME),
measures a legitimate grpcio client calling ``mlp`` back to back on its own (the baseline),
then runs each attack of tests/fixtures/h2_attacks.py for ``--duration`` seconds with that
client beside it, in its own process. It prints one table, the transports side by side:
legitimate calls/s and p99 against the baseline, the server's RSS at its peak during the
attack and 2 s after it, the GOAWAY codes the attacker got, and PASS/FAIL:

- calls/s at least ``MIN_THROUGHPUT`` (0.5) of the baseline, p99 under ``MAX_P99`` (100)
  times the baseline;
- RSS peak under ``RSS_BOUND_MB`` above the server's RSS before the attack;
- the server still running, its log without a traceback;
- floods: the server ended the attacker's connections (GOAWAY ENHANCE_YOUR_CALM or
  PROTOCOL_ERROR, or closed before the attack was over: a peer that never reads may not get
  to see the GOAWAY); idle connections: every fresh connection was answered.

Loopback only; every loop is bounded by the duration. On a 2-core machine the attacker, the
legitimate client and the server share the cores: the ratios, not the absolute rates, are
the result (note ``uptime``'s load beside them).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.h2_attacks import ATTACKS, Outcome
from fixtures.servers import Server

from inferd.serving.examples import ensure_examples

# The gRPC transports as `inferd serve` selects them (as in tests/security/test_grpc_attacks.py).
TRANSPORTS: dict[str, list[str]] = {
    "grpcio": ["--grpc-transport", "grpcio"], "native": ["--grpc-transport", "native"],
}  # fmt: skip
MIN_THROUGHPUT = 0.5
MAX_P99 = 100.0
RSS_BOUND_MB = 512
CALM = {0xB: "ENHANCE_YOUR_CALM", 0x1: "PROTOCOL_ERROR"}
NO_GOAWAY_EXPECTED = {"gzip_bomb", "deflate_bomb", "many_connections", "random_frames"}


def legit_client(port: int, seconds: float, pipe: Connection) -> None:
    """In its own process: ``mlp`` calls back to back for ``seconds``; sends (calls, p50 s,
    p99 s, errors) through ``pipe`` after "ready" once connected."""
    import grpc
    import numpy as np

    from inferd.protocol._gen import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 256])
    request.raw_input_contents.append(np.ones((1, 256), dtype="<f4").tobytes())
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for _ in range(20):
            call(request, timeout=10)
        pipe.send("ready")
        latencies, errors = [], 0
        end = time.perf_counter() + seconds
        while (start := time.perf_counter()) < end:
            try:
                call(request, timeout=10)
                latencies.append(time.perf_counter() - start)
            except grpc.RpcError:
                errors += 1
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else float("inf")
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("inf")
    pipe.send((len(latencies), p50, p99, errors))


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    """Samples a process's RSS every 50 ms in a thread; ``peak`` after ``stop()``."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Row:
    """One attack against one transport."""

    calls_per_s: float
    p99_ms: float
    errors: int
    rss_before: float
    rss_peak: float
    rss_after: float
    outcome: Outcome | None
    alive: bool


def measure(
    server: Server, seconds: float, attack: Callable[[int, float], Awaitable[Outcome]] | None
) -> Row:
    """The legitimate client for ``seconds``, with ``attack`` beside it (None: alone)."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    client = context.Process(target=legit_client, args=(server.grpc_port, seconds, theirs))
    client.start()
    if not ours.poll(60) or ours.recv() != "ready":
        raise RuntimeError("the legitimate client did not connect")
    before = rss_mb(server.proc.pid)
    sampler = PeakSampler(server.proc.pid)
    outcome = asyncio.run(attack(server.grpc_port, seconds)) if attack else None
    calls, _, p99, errors = ours.recv() if ours.poll(seconds + 60) else (0, 0, float("inf"), -1)
    client.join(10)
    peak = sampler.stop()
    time.sleep(2.0)
    alive = server.proc.poll() is None
    after = rss_mb(server.proc.pid) if alive else 0.0
    return Row(calls / seconds, p99 * 1e3, errors, before, peak, after, outcome, alive)


def verdict(name: str, row: Row, base: Row) -> tuple[bool, str]:
    """PASS or FAIL, and the GOAWAY codes (or probes) the attacker saw."""
    outcome = row.outcome
    assert outcome is not None
    if name == "idle_connections":
        seen, ok = (
            f"probes {outcome.probes_ok}/{outcome.probes}",
            (outcome.probes_ok == outcome.probes > 0),
        )
    else:
        codes = sorted(outcome.goaways)
        seen = " ".join(f"{CALM.get(c, hex(c))}x{outcome.goaways[c]}" for c in codes)
        seen = f"{seen or 'no GOAWAY'}, closed {outcome.closed}/{outcome.connections}"
        ended = (bool(codes) or outcome.closed > 0) and set(codes) <= set(CALM)
        ok = name in NO_GOAWAY_EXPECTED or ended
    ok = (
        ok and row.alive and row.errors == 0
        and row.calls_per_s >= MIN_THROUGHPUT * base.calls_per_s
        and row.p99_ms < MAX_P99 * base.p99_ms
        and row.rss_peak - row.rss_before < RSS_BOUND_MB
    )  # fmt: skip
    return ok, seen


def run_transport(transport: str, names: list[str], seconds: float) -> dict[str, Row]:
    """Every attack against one transport; "baseline" is the client alone."""
    with tempfile.TemporaryDirectory(prefix=f"inferd-attacks-{transport}-") as tmp:
        home = Path(tmp)
        repo = ensure_examples(home / "repo")
        rows: dict[str, Row] = {}
        server = Server(repo, home, extra=TRANSPORTS[transport])
        try:
            server.wait_ready()
            rows["baseline"] = measure(server, seconds, None)
            for name in names:
                rows[name] = measure(server, seconds, ATTACKS[name])
                print(f"  {transport:7} {name:20} done", file=sys.stderr, flush=True)
        finally:
            server.stop()
        log = (home / "server.log").read_bytes()  # bytes: C-core may log what attackers sent
        if b"Traceback" in log:
            print(f"{transport}: traceback in the server log:\n{log[-3000:]!r}", file=sys.stderr)
            for row in rows.values():
                row.alive = False
        return rows


def report(results: dict[str, dict[str, Row]], names: list[str]) -> bool:
    """Print the table; True when every row passed."""
    transports = list(results)
    head = f"{'attack':19}" + "".join(
        f" | {t + ': calls/s (x)':>19} {'p99 ms (x)':>13} {'RSS MB peak/after':>17} "
        f"{'attacker got':>44} {'':4}"
        for t in transports
    )
    print(head)
    print("-" * len(head))
    everything = True
    for name in ["baseline", *names]:
        line = f"{name:19}"
        for transport in transports:
            row, base = results[transport][name], results[transport]["baseline"]
            ratio = row.calls_per_s / base.calls_per_s if base.calls_per_s else 0.0
            p99_ratio = row.p99_ms / base.p99_ms if base.p99_ms else 0.0
            ok, seen = (True, "") if name == "baseline" else verdict(name, row, base)
            everything &= ok
            rss = f"{row.rss_peak:.0f}/{row.rss_after:.0f}"
            line += (
                f" | {row.calls_per_s:11.0f} ({ratio:4.2f}) {row.p99_ms:7.1f} ({p99_ratio:4.1f}) "
                f"{rss:>17} {seen:>44} {'PASS' if ok else 'FAIL':4}"
            )
        print(line)
    return everything


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per attack")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated names")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma-separated")
    args = parser.parse_args()
    names = [n for n in args.attacks.split(",") if n]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error(f"--attacks: unknown {unknown}; expected some of {list(ATTACKS)}")
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    results = {t: run_transport(t, names, args.duration) for t in args.transports.split(",")}
    everything = report(results, names)
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0 if everything else 1


if __name__ == "__main__":
    sys.exit(main())
