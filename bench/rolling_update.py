"""Rolling update behind a real load balancer: throughput through the roll and what fails.

Run ``.venv/bin/python bench/rolling_update.py`` (about 3 to 5 minutes on 2 cores). It starts
PostgreSQL (Debian's package), ``--replicas`` `inferd serve` processes on it and HAProxy in
front (HTTP, and gRPC over h2; health checks on ``/v2/health/ready``), drives ``--threads``
closed-loop SDK clients per protocol through the balancer, and prints, from one run:

- roll: steady load, then each replica in turn gets SIGTERM, drains, starts and is checked up
  again; the production version of ``linear`` is promoted after the first restart. Requests
  per second for every second, the mean before vs during the roll (ratio), and failures seen
  by the clients before any retry and after the SDK's retry. Run once with
  ``--drain-delay-s`` (default 1 s: readiness false first, listeners closed after) and once
  with 0 (uvicorn's own behaviour: the listener closes at once) as the baseline;
- kill: SIGKILL of one replica under the same load, with HAProxy retrying refused connections
  only, then also replaying requests that got no answer (``retry-on empty-response``): the
  requests lost before any retry, and after the SDK's.

Nothing here is a unit test: the pass/fail of the same mechanics lives in
tests/deploy/test_rolling_update.py. Note ``uptime`` beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.postgres import PostgresCluster
from fixtures.rolling import BACKENDS, Cluster, Load, Tally, throughput

from inferd.client import Client
from inferd.serving.examples import build_linear_onnx, ensure_examples


def make_repo(root: Path) -> Path:
    """The examples with a second `linear` version (y = 3x + 1), as the tests use."""
    repo = ensure_examples(root / "repo")
    build_linear_onnx(repo / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
    config = repo / "linear" / "model.yaml"
    config.write_text(config.read_text() + "version_policy: all\n")
    return repo


def summary(total: Tally, marks: dict[str, float], start: float, end: float) -> dict[str, Any]:
    per_s = throughput(total.times, start, end, 1.0)
    before = throughput(total.times, start, marks["roll_start"], 1.0)
    during = throughput(total.times, marks["roll_start"], marks["roll_end"], 1.0)
    mean_before = sum(before) / len(before)
    mean_during = sum(during) / len(during)
    return {
        "answers": total.ok,
        "failures_before_retry": len(total.raw_failures),
        "failures_after_sdk_retry": len(total.failures),
        "wrong_outputs": len(total.wrong),
        "versions": total.versions,
        "req_per_s_each_second": per_s,
        "req_per_s_before": round(mean_before, 1),
        "req_per_s_during_roll": round(mean_during, 1),
        "during_over_before": round(mean_during / mean_before, 2),
        "roll_s": round(marks["roll_end"] - marks["roll_start"], 1),
        "first_failures": total.raw_failures[:3],
    }


def roll(
    pg: PostgresCluster, repo: Path, home: Path, args: argparse.Namespace, drain: float
) -> dict[str, Any]:
    url = pg.create_database(f"roll_{int(drain * 1000)}_{os.getpid()}")
    with Cluster(repo, home, url, count=args.replicas, drain_delay_s=drain) as cluster:
        with Client(cluster.lb.url) as admin:
            admin.promote("linear", 2)
        load = Load(cluster.lb.url, cluster.lb.grpc_url, threads=args.threads)
        start = time.monotonic()
        with load.running():
            time.sleep(args.steady)
            marks = {"roll_start": time.monotonic()}
            for i in range(args.replicas):
                cluster.restart(i)
                if i == 0:
                    with Client(cluster.lb.url) as admin:
                        admin.promote("linear", 1)
            marks["roll_end"] = time.monotonic()
            time.sleep(args.steady)
        total = load.stop()
        result = summary(total, marks, start, time.monotonic())
        result["haproxy"] = cluster.lb.counters()
        return result


def kill(
    pg: PostgresCluster, repo: Path, home: Path, args: argparse.Namespace, retry_on: str
) -> dict[str, Any]:
    url = pg.create_database(f"kill_{len(retry_on)}_{os.getpid()}")
    with Cluster(repo, home, url, count=args.replicas, retry_on=retry_on) as cluster:
        load = Load(cluster.lb.url, cluster.lb.grpc_url, threads=args.threads)
        with load.running():
            time.sleep(args.steady)
            killed_at = time.monotonic()
            cluster.kill(1)
            for backend in BACKENDS:
                cluster.lb.wait_up(backend, cluster.names - {"r1"})
            marked_down_s = time.monotonic() - killed_at
            time.sleep(args.steady)
        total = load.stop()
        return {
            "haproxy_retry_on": retry_on,
            "answers": total.ok,
            "failures_before_retry": len(total.raw_failures),
            "failures_after_sdk_retry": len(total.failures),
            "wrong_outputs": len(total.wrong),
            "client_threads": len(load.urls),
            "marked_down_after_s": round(marked_down_s, 2),
            "haproxy": cluster.lb.counters(),
            "failures": total.raw_failures,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="client threads per protocol")
    parser.add_argument("--steady", type=float, default=8.0, help="seconds before/after")
    parser.add_argument("--drain-delay-s", type=float, default=1.0)
    args = parser.parse_args()
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    pg = PostgresCluster().start()
    try:
        with tempfile.TemporaryDirectory(prefix="inferd-roll-") as tmp:
            root = Path(tmp)
            repo = make_repo(root)
            for name, run in [
                ("roll_with_drain", lambda h: roll(pg, repo, h, args, args.drain_delay_s)),
                ("roll_without_drain", lambda h: roll(pg, repo, h, args, 0.0)),
                ("kill_conn_failure", lambda h: kill(pg, repo, h, args, "conn-failure")),
                ("kill_empty_response", lambda h: kill(pg, repo, h, args,
                                                       "conn-failure empty-response")),
            ]:  # fmt: skip
                (root / name).mkdir()
                results[name] = run(root / name)
                print(name, json.dumps(results[name]), flush=True)
    finally:
        pg.stop()
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
