"""A closed-loop gRPC load generator: ``concurrency`` callers each send ModelInfer back to back.

Run as its own process (``python bench/_grpcload.py TARGET MODEL CONCURRENCY SECONDS``) so
its CPU is measured apart from the caller's; prints one ``BENCH_JSON {...}`` line. Requests
are serialized once and sent as bytes, and answers are only checked for their status, so
the generator spends as little of the shared CPU as a Python client can.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc
import numpy as np
from _wrk import MARKER, model_input

from inferd.protocol._gen import grpc_service_pb2 as pb

METHOD = "/inference.GRPCInferenceService/ModelInfer"
CHANNELS = 8  # separate HTTP/2 connections, like separate clients


def request_bytes(model: str) -> bytes:
    """The serialized ModelInferRequest for one row of ``model`` (raw contents)."""
    x = model_input(model)
    msg = pb.ModelInferRequest(model_name=model)
    msg.inputs.add(name="x", datatype="FP32", shape=x.shape)
    msg.raw_input_contents.append(x.astype("<f4").tobytes())
    return msg.SerializeToString()


async def run(target: str, model: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Drive the server for ``seconds``; return requests, errors and latency percentiles."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(CHANNELS)]
    calls = [c.unary_unary(METHOD) for c in channels]
    body = request_bytes(model)
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds

    async def caller(index: int) -> None:
        nonlocal errors
        call = calls[index % CHANNELS]
        while (start := time.perf_counter()) < end:
            try:
                await call(body, timeout=30)
            except grpc.RpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "requests": len(latencies),
        "duration_s": elapsed,
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    target, model, concurrency, seconds = sys.argv[1:5]
    import uvloop

    result = uvloop.run(run(target, model, int(concurrency), float(seconds)))
    print(MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
