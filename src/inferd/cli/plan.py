"""``inferd plan ...``: capacity planning (docs/deploy.md#capacity-planning).

inferd plan measure --url URL --model M [--concurrency 1,2,4,8,16] [--duration 5s] --out F
inferd plan replicas --curve F --slo-p99-ms X --peak-rps R [--headroom 1.25]
inferd plan simulate --curve F --trace T.csv --slo-p99-ms X [--hpa hpa.yaml] [--plot out.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import re
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from inferd.cli.models import DEFAULT_URL, api_key_default
from inferd.errors import ConfigError
from inferd.plan.hpa import SHIPPED, HpaPolicy
from inferd.plan.measure import LoadOptions, measure
from inferd.plan.model import Curve, Point, capacity_at_slo, replicas_for
from inferd.plan.simulate import Options, Result, load_trace, simulate

HEADROOM = 1.25  # plan for 80% of the SLO capacity: the shipped HPA's hint target is 800m
_DURATION = re.compile(r"^([0-9.]+)(ms|s|m)?$")


def duration_s(text: str) -> float:
    """``500ms``, ``5s``, ``2m`` or a plain number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 5s or 500ms, got {text!r}")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2] or "s"]


def levels(text: str) -> tuple[int, ...]:
    """``1,2,4,8`` as increasing positive integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values) or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"expected increasing integers like 1,2,4,8, got {text!r}")
    return values


def add_parser(commands: Any) -> None:
    """Add the ``plan`` command and its subcommands."""
    parser = commands.add_parser("plan", help="capacity planning: curve, replicas, HPA replay")
    sub = parser.add_subparsers(dest="action", required=True)
    m = sub.add_parser("measure", help="measure a replica's throughput/latency curve")
    m.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    m.add_argument("--api-key", default=api_key_default(), help="default $INFERD_API_KEY")
    m.add_argument("--model", required=True)
    m.add_argument("--version", help="model version (default: the served one)")
    m.add_argument("--concurrency", type=levels, default=(1, 2, 4, 8, 16),
                   help="closed-loop clients per step (default 1,2,4,8,16)")  # fmt: skip
    m.add_argument("--duration", type=duration_s, default=5.0, help="per step (default 5s)")
    m.add_argument("--warmup", type=duration_s, default=1.0, help="left out per step (1s)")
    m.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    m.add_argument("--out", type=Path, required=True, help="curve file to write (JSON)")
    r = sub.add_parser("replicas", help="replicas a peak needs under a p99 SLO")
    _slo_args(r)
    r.add_argument("--peak-rps", type=float, required=True, help="peak requests/s, all replicas")
    r.add_argument("--headroom", type=float, default=HEADROOM,
                   help=f"multiplier on the peak (default {HEADROOM}: 80%% busy)")  # fmt: skip
    r.add_argument("--json", action="store_true", help="machine-readable output")
    s = sub.add_parser("simulate", help="replay a traffic trace through the HPA policy")
    _slo_args(s)
    s.add_argument("--trace", type=Path, required=True, help="CSV with columns time_s,rps")
    s.add_argument("--hpa", type=Path, help="HPA manifest (default: the shipped prod HPA)")
    s.add_argument("--min-replicas", type=int, help="override the HPA's minReplicas")
    s.add_argument("--max-replicas", type=int, help="override the HPA's maxReplicas")
    s.add_argument("--initial-replicas", type=int, help="replicas at the start (default: min)")
    s.add_argument("--startup", type=duration_s, default=30.0,
                   help="scale-up to serving (default 30s)")  # fmt: skip
    s.add_argument("--sync-period", type=duration_s, default=15.0, help="HPA sync (15s)")
    s.add_argument("--plot", type=Path, help="write a PNG here (needs inferd[plan])")
    s.add_argument("--json", action="store_true", help="machine-readable output")


def _slo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--curve", type=Path, required=True, help="from `inferd plan measure`")
    parser.add_argument("--slo-p99-ms", type=float, required=True, help="p99 latency SLO, ms")


def run(args: argparse.Namespace) -> int:
    """Execute one ``plan`` subcommand; prints the result."""
    if args.action == "measure":
        return _measure(args)
    curve = Curve.load(args.curve)
    if args.action == "replicas":
        result = replicas_report(curve, args.slo_p99_ms, args.peak_rps, args.headroom)
        print(json.dumps(result, indent=2) if args.json else replicas_text(result))
        return 0
    policy = HpaPolicy.load(args.hpa) if args.hpa is not None else SHIPPED
    policy = _override(policy, args.min_replicas, args.max_replicas)
    options = Options(
        args.slo_p99_ms, sync_s=round(args.sync_period), startup_s=round(args.startup),
        initial_replicas=args.initial_replicas,
    )  # fmt: skip
    sim = simulate(curve, load_trace(args.trace), policy, options)
    if args.plot is not None:
        from inferd.plan.plot import write_png

        write_png(sim, args.plot)
    print(json.dumps(simulation_summary(sim), indent=2) if args.json else simulation_text(sim))
    return 0


def _measure(args: argparse.Namespace) -> int:
    # httpx logs every request at INFO: thousands of lines, and CPU taken from the load.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = LoadOptions(args.url, args.model, args.concurrency, args.duration, args.warmup,
                          args.rows, args.version, args.api_key)  # fmt: skip

    def report(p: Point) -> None:
        print(f"concurrency {p.concurrency:>4}: {p.throughput_rps:9.1f} req/s  p50 "
              f"{p.p50_ms:7.2f}  p95 {p.p95_ms:7.2f}  p99 {p.p99_ms:7.2f} ms  queue "
              f"{p.queue_depth:5.1f}  errors {p.errors}", flush=True)  # fmt: skip

    print(f"closed loop against {args.url}, model {args.model}, {args.duration:g} s per step")
    curve = asyncio.run(measure(options, report))
    curve.save(args.out)
    print(f"wrote {args.out}")
    return 0


def _override(policy: HpaPolicy, low: int | None, high: int | None) -> HpaPolicy:
    low = policy.min_replicas if low is None else low
    high = policy.max_replicas if high is None else high
    if not 1 <= low <= high:
        raise ConfigError("plan", "--min-replicas", f"expected 1 <= min <= max, got {low}, {high}")
    return replace(policy, min_replicas=low, max_replicas=high)


def replicas_report(
    curve: Curve, slo_p99_ms: float, peak_rps: float, headroom: float
) -> dict[str, Any]:
    """Capacity per replica at the SLO and the replicas for ``peak_rps``."""
    capacity = capacity_at_slo(curve, slo_p99_ms)
    return {
        "model": curve.model, "slo_p99_ms": slo_p99_ms, "capacity_rps": round(capacity, 2),
        "peak_rps": peak_rps, "headroom": headroom,
        "replicas": replicas_for(peak_rps, capacity, headroom),
        "replicas_without_headroom": replicas_for(peak_rps, capacity),
        "measured_up_to_rps": round(curve.peak_rps, 2),
    }  # fmt: skip


def replicas_text(r: dict[str, Any]) -> str:
    exact = r["peak_rps"] * r["headroom"] / r["capacity_rps"]
    return "\n".join([
        f"{r['model']}: {r['capacity_rps']:.1f} requests/s per replica with p99 <= "
        f"{r['slo_p99_ms']:g} ms (measured up to {r['measured_up_to_rps']:.1f})",
        f"replicas = ceil(peak {r['peak_rps']:g} x headroom {r['headroom']:g} / "
        f"{r['capacity_rps']:.1f}) = ceil({exact:.2f}) = {r['replicas']} "
        f"({r['replicas_without_headroom']} without headroom)",
        f"server setting for the desired-replicas hint: INFERD_CAPACITY_RPS="
        f"{r['model']}={r['capacity_rps']:g}",
    ])  # fmt: skip


def simulation_summary(sim: Result) -> dict[str, Any]:
    changes = [{"time_s": s.time_s, "replicas": s.replicas, "ready": s.ready}
               for prev, s in pairwise(sim.steps)
               if (s.replicas, s.ready) != (prev.replicas, prev.ready)]  # fmt: skip
    return {
        "capacity_rps": round(sim.capacity_rps, 2), "slo_p99_ms": sim.slo_p99_ms,
        "violation_s": sim.violation_s, "violated_share": round(sim.violated_share, 4),
        "max_replicas": sim.max_replicas, "replica_seconds": sim.replica_seconds,
        "static_replicas": sim.static_replicas, "seconds": len(sim.steps), "changes": changes,
    }  # fmt: skip


def simulation_text(sim: Result) -> str:
    lines = ["time_s    rps  replicas  ready  p99_ms  over_slo"]
    previous = None
    for s in sim.steps:
        state = (s.replicas, s.ready, s.violation)
        if state != previous:
            p99 = "overload" if math.isinf(s.p99_ms) else f"{s.p99_ms:.1f}"
            lines.append(f"{s.time_s:6.0f} {s.rps:6.0f} {s.replicas:9d} {s.ready:6d} {p99:>7} "
                         f"{'yes' if s.violation else 'no':>9}")  # fmt: skip
            previous = state
    static = sim.static_replicas
    lines += [
        f"capacity {sim.capacity_rps:.1f} requests/s per replica at p99 <= {sim.slo_p99_ms:g} ms",
        f"over the SLO: {sim.violation_s} of {len(sim.steps)} s, "
        f"{sim.violated_share:.1%} of requests",
        f"replicas: up to {sim.max_replicas}, {sim.replica_seconds} replica-seconds "
        f"(a fixed {static} for the peak: {static * len(sim.steps)})",
    ]  # fmt: skip
    return "\n".join(lines)
