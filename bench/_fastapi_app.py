"""The anchor of ``bench/vs_fastapi.py``: a naive FastAPI server for the same ONNX models.

What a team writes in an afternoon: one FastAPI app, pydantic models for the V2 JSON request
and response, ``numpy.asarray`` of the data, one ``InferenceSession.run`` per request (no
batching), served by ``uvicorn --workers N`` (uvicorn picks uvloop and httptools on its own
when they are installed). Two choices keep the anchor from being a strawman: the endpoint is
``async def`` and calls onnxruntime on the event loop (a plain ``def`` endpoint adds a
thread-pool hop per request), and the sessions get inferd's own options (one intra-op and
one inter-op thread): onnxruntime's defaults (a spinning thread per core in every worker)
made the anchor 3 to 6 times slower on the 2-core benchmark machine, which measures
onnxruntime's thread pool rather than the server.

The model repository comes from ``FASTAPI_BENCH_REPOSITORY`` (``<repo>/<model>/1/model.onnx``).
Run: ``FASTAPI_BENCH_REPOSITORY=... uvicorn _fastapi_app:app --workers 2`` from ``bench/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

_DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64}


class InputTensor(BaseModel):
    """One V2 input tensor."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferRequest(BaseModel):
    """A V2 JSON inference request."""

    id: str | None = None
    inputs: list[InputTensor]


class OutputTensor(BaseModel):
    """One V2 output tensor."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    """A V2 JSON inference response."""

    model_name: str
    id: str | None = None
    outputs: list[OutputTensor]


def _sessions() -> dict[str, ort.InferenceSession]:
    root = Path(os.environ["FASTAPI_BENCH_REPOSITORY"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return {
        folder.name: ort.InferenceSession(str(folder / "1" / "model.onnx"), options)
        for folder in sorted(root.iterdir())
        if (folder / "1" / "model.onnx").exists()
    }


app = FastAPI()
SESSIONS = _sessions()


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    """Ready once the sessions are loaded (at import)."""
    return {"ready": True}


@app.post("/v2/models/{model}/infer")
async def infer(model: str, request: InferRequest) -> InferResponse:
    """Run one request through the model's session."""
    session = SESSIONS.get(model)
    if session is None:
        raise HTTPException(404, f"model '{model}' not found")
    feeds = {
        t.name: np.asarray(t.data, dtype=_DTYPES[t.datatype]).reshape(t.shape)
        for t in request.inputs
    }
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, feeds)
    outputs = [
        OutputTensor(name=n, shape=list(r.shape), datatype="FP32", data=r.ravel().tolist())
        for n, r in zip(names, results, strict=True)
    ]
    return InferResponse(model_name=model, id=request.id, outputs=outputs)
