"""Coalesced observations give exactly what one observation at a time gives."""

from __future__ import annotations

import asyncio
import random

from prometheus_client import CollectorRegistry

from inferd.monitoring.metrics import LATENCY_BUCKETS, Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    wanted = ("inferd_requests", "inferd_request_duration_seconds", "inferd_queue_duration_seconds")
    for family in metrics.registry.collect():
        if family.name not in wanted:
            continue  # other families' children are created empty alongside
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_coalesced_observations_equal_one_at_a_time() -> None:
    rng = random.Random(7)
    observations = [(rng.choice(["a", "b"]), rng.choice(["1", "2"]), rng.choice([200, 400]),
                     rng.choice([0.0, *LATENCY_BUCKETS, 20.0, rng.random() / 10]),
                     rng.random() / 100) for _ in range(500)]  # fmt: skip
    coalesced = Metrics(CollectorRegistry())
    direct = Metrics(CollectorRegistry())

    async def observe_in_a_loop() -> None:
        for model, version, code, duration, wait in observations:
            coalesced.observe_request(model, version, "http", code, duration, wait)
        await asyncio.sleep(0)  # the loop turn that flushes

    asyncio.run(observe_in_a_loop())
    for model, version, code, duration, wait in observations:
        direct.requests.labels(model, version, "http", str(code)).inc()
        direct.request_duration.labels(model, version).observe(duration)
        direct.queue_duration.labels(model, version).observe(wait)
    assert _samples(coalesced) == _samples(direct)
    # Values on a bucket bound land in that bucket, as observe() puts them.
    text = coalesced.render().decode()
    assert 'inferd_requests_total{code="200",model="a",protocol="http",version="1"}' in text


def test_render_flushes_what_is_pending() -> None:
    metrics = Metrics(CollectorRegistry())

    async def observe_and_render() -> bytes:
        metrics.observe_request("m", "1", "grpc", 200, 0.01, 0.001)
        return metrics.render()  # before the loop turned

    text = asyncio.run(observe_and_render()).decode()
    assert 'inferd_requests_total{code="200",model="m",protocol="grpc",version="1"} 1.0' in text
    assert 'inferd_request_duration_seconds_count{model="m",version="1"} 1.0' in text
