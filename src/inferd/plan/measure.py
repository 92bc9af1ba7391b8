"""``inferd plan measure``: a replica's throughput/latency curve, measured against a server.

Closed loop: at each concurrency C, C clients each send a request, wait for its answer and
send the next, for the step's duration. C is what is controlled; throughput and latency are
what come out (Little's law: C = throughput x mean latency). Requests answered in the first
``warmup_s`` of a step are left out of its figures. The load runs in one asyncio process
through the SDK (``inferd.client.AsyncClient``, HTTP, binary tensors) on the machine that runs
the command: on a small machine it takes CPU from the server it measures, so for production
figures run it from another machine against one replica.

During each step ``/metrics`` is read every ``scrape_s`` seconds for the model's
``inferd_queue_depth`` (requests waiting in its batcher queues), which the simulator needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from inferd.client import AsyncClient, ClientError
from inferd.plan.model import Curve, Point
from inferd.types import DATATYPE_TO_DTYPE

Clock = Callable[[], float]


@dataclass(frozen=True)
class LoadOptions:
    """What to measure and how long.

    Attributes:
        url: the server, ``http://host:port``.
        model: model name; ``version`` optional.
        levels: the concurrency steps, increasing.
        duration_s: seconds per step, warm-up included.
        warmup_s: seconds at the start of each step left out of its figures.
        rows: rows (first dimension) per request.
        api_key: sent with every request; None for none.
        scrape_s: seconds between reads of ``/metrics``.
    """

    url: str
    model: str
    levels: tuple[int, ...] = (1, 2, 4, 8, 16)
    duration_s: float = 5.0
    warmup_s: float = 1.0
    rows: int = 1
    version: str | None = None
    api_key: str | None = None
    scrape_s: float = 0.25


def example_inputs(metadata: Mapping[str, Any], rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matching a model's V2 metadata: dynamic dimensions become ``rows`` for
    the first and 1 for the others."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in metadata["inputs"]:
        shape = [rows if i == 0 and d < 0 else max(d, 1) for i, d in enumerate(spec["shape"])]
        if spec["datatype"] == "BYTES":
            out[spec["name"]] = np.full(shape, b"x", dtype=object)
        else:
            dtype = DATATYPE_TO_DTYPE[spec["datatype"]]
            out[spec["name"]] = rng.random(shape).astype(dtype)
    return out


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) in milliseconds, numpy's linear method."""
    return float(np.percentile(np.asarray(latencies_s), q)) * 1000


@dataclass
class _Step:
    latencies: list[float]
    errors: int = 0


async def _client_loop(
    client: AsyncClient, options: LoadOptions, inputs: Mapping[str, np.ndarray],
    measure_from: float, end: float, step: _Step, clock: Clock,
) -> None:  # fmt: skip
    while (sent := clock()) < end:
        try:
            await client.infer(options.model, inputs, version=options.version)
        except ClientError:
            ok = False
        else:
            ok = True
        done = clock()
        if sent >= measure_from and done <= end:
            if ok:
                step.latencies.append(done - sent)
            else:
                step.errors += 1


def queue_depth(metrics_text: str, model: str) -> float:
    """The sum of ``inferd_queue_depth`` over the model's versions in a /metrics text."""
    total = 0.0
    label = f'model="{model}"'
    for line in metrics_text.splitlines():
        if line.startswith("inferd_queue_depth{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _scrape(http: httpx.AsyncClient, options: LoadOptions, until: float, into: list[float],
                  clock: Clock) -> None:  # fmt: skip
    """Queue depth samples until ``until``; stops quietly where /metrics is refused."""
    while clock() < until:
        answer = await http.get("/metrics")
        if answer.status_code != 200:
            return
        into.append(queue_depth(answer.text, options.model))
        await asyncio.sleep(options.scrape_s)


async def measure_step(
    clients: Sequence[AsyncClient], http: httpx.AsyncClient | None, options: LoadOptions,
    inputs: Mapping[str, np.ndarray], concurrency: int, clock: Clock = time.perf_counter,
) -> Point:  # fmt: skip
    """One closed-loop step at ``concurrency``.

    Args:
        clients: the servers to load; closed-loop client i uses ``clients[i % len]`` (several
            replicas get the clients round-robin, as a Service spreads connections).
        http: where ``/metrics`` is read for the queue depth; None: not read.
    """
    start = clock()
    measure_from, end = start + options.warmup_s, start + options.duration_s
    step = _Step([])
    depths: list[float] = []
    loops = [_client_loop(clients[i % len(clients)], options, inputs, measure_from, end, step,
                          clock) for i in range(concurrency)]  # fmt: skip
    if http is not None:
        loops.append(_scrape(http, options, end, depths, clock))
    await asyncio.gather(*loops)
    window = end - measure_from
    lat = step.latencies
    if not lat:
        raise RuntimeError(
            f"no request to {options.model!r} answered at concurrency {concurrency} "
            f"({step.errors} failed): is the model ready?"
        )
    return Point(
        concurrency=concurrency,
        throughput_rps=len(step.latencies) / window,
        p50_ms=percentile_ms(lat, 50), p95_ms=percentile_ms(lat, 95),
        p99_ms=percentile_ms(lat, 99),
        queue_depth=sum(depths) / len(depths) if depths else 0.0,
        requests=len(step.latencies), errors=step.errors,
    )  # fmt: skip


async def measure(options: LoadOptions, report: Callable[[Point], None] | None = None) -> Curve:
    """Every step of ``options.levels``; ``report`` sees each point as it is measured."""
    if options.warmup_s >= options.duration_s:
        raise ValueError(f"warmup_s ({options.warmup_s}) must be below duration_s "
                         f"({options.duration_s})")  # fmt: skip
    headers = {"authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    points = []
    async with (
        AsyncClient(options.url, api_key=options.api_key, timeout=60) as client,
        httpx.AsyncClient(base_url=options.url, headers=headers, timeout=10) as http,
    ):
        metadata = await client.model_metadata(options.model, options.version)
        inputs = example_inputs(metadata, options.rows)
        for level in options.levels:
            point = await measure_step([client], http, options, inputs, level)
            points.append(point)
            if report is not None:
                report(point)
    meta = {"url": options.url, "duration_s": options.duration_s, "warmup_s": options.warmup_s,
            "rows": options.rows, "version": options.version, "load": "closed-loop",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    return Curve(options.model, tuple(points), meta)
