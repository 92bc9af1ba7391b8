"""VllmRuntime: the load error where vLLM or a GPU is missing, the engine adapter over a fake
``AsyncLLM`` (events, cancellation aborts in vLLM, failures), and a real run where vLLM and a
CUDA GPU are both present (skipped otherwise)."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import numpy as np
import pytest
from fixtures.generative import TinyLM, tiny_lm  # noqa: F401 - the fixture
from fixtures.models import load_runtime

from inferd.errors import ModelLoadError
from inferd.generative.sampling import SamplingParams
from inferd.generative.sequence import SyncStream
from inferd.runtimes import runtime_class
from inferd.runtimes.vllm import VllmApi, VllmEngine, VllmRuntime, missing


def _gpu_and_vllm() -> bool:
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def test_platform_resolves_to_vllm_runtime() -> None:
    assert runtime_class("vllm") is VllmRuntime


def test_missing_names_what_is_not_here() -> None:
    assert missing(True, True) is None
    assert missing(False, True) == "the vllm package (pip install vllm), not installed"
    assert missing(True, False) == "a CUDA GPU visible to PyTorch, none found"
    assert missing(False, False) == (
        "the vllm package (pip install vllm), not installed and a CUDA GPU visible to "
        "PyTorch, none found"
    )


@pytest.mark.skipif(_gpu_and_vllm(), reason="vLLM and a GPU are both here: the load works")
def test_load_without_vllm_or_gpu_names_model_platform_and_what_is_missing(
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    with pytest.raises(ModelLoadError) as info:
        load_runtime("vllm", tiny_lm.path, device="auto")
    message = info.value.message
    assert message.startswith("model 'm' version ")
    assert "platform vllm needs " in message
    assert "not installed" in message or "none found" in message
    assert "platform: transformers" in message


class FakeLLM:
    """Stands in for vLLM's AsyncLLM: yields a delta per token until ``tokens`` or aborted."""

    def __init__(self, tokens: int, fail: bool = False) -> None:
        self.tokens = tokens
        self.fail = fail
        self.aborted: list[str] = []
        self.gate = asyncio.Event()  # the stream pauses after its first token until set

    async def generate(self, prompt: Any, sampling: Any, request_id: str) -> AsyncIterator[NS]:
        if self.fail:
            raise RuntimeError("no room")
        for i in range(self.tokens):
            done = i == self.tokens - 1
            choice = NS(text=f"t{i} ", token_ids=[100 + i], logprobs=None,
                        finish_reason="length" if done else None)  # fmt: skip
            yield NS(prompt_token_ids=prompt["prompt_token_ids"], outputs=[choice], finished=done)
            if i == 0:
                await self.gate.wait()

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def shutdown(self) -> None:
        pass


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def _engine(llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> VllmEngine:
    api = VllmApi(lambda **kw: NS(**kw), "DELTA", lambda **kw: dict(kw))
    return VllmEngine(llm, loop, api, tokenizer=None, max_context=64)


def test_the_adapter_streams_vllm_deltas_as_events(loop: asyncio.AbstractEventLoop) -> None:
    llm = FakeLLM(tokens=3)
    loop.call_soon_threadsafe(llm.gate.set)
    stream = SyncStream()
    handle = _engine(llm, loop).submit([1, 2], SamplingParams(max_tokens=3), stream.sink)
    text, final = stream.result(timeout=10)
    assert text == "t0 t1 t2 "
    assert (final.finish, final.prompt_tokens, final.completion_tokens) == ("length", 2, 3)
    assert handle.finish == "length"
    assert llm.aborted == []


def test_cancelling_aborts_the_request_in_vllm(loop: asyncio.AbstractEventLoop) -> None:
    llm = FakeLLM(tokens=10)
    engine = _engine(llm, loop)
    events: list[Any] = []
    first = threading.Event()
    done = threading.Event()

    def sink(event: Any) -> None:
        events.append(event)
        (done if event.finish else first).set()

    handle = engine.submit([1], SamplingParams(max_tokens=10), sink)
    assert first.wait(10)
    engine.cancel(handle)
    assert done.wait(10)
    assert [e.finish for e in events] == [None, "cancelled"]
    assert llm.aborted == [handle.id]
    assert engine.running == 0


def test_a_request_vllm_fails_ends_with_an_error_event(loop: asyncio.AbstractEventLoop) -> None:
    stream = SyncStream()
    _engine(FakeLLM(tokens=1, fail=True), loop).submit([1], SamplingParams(), stream.sink)
    _, final = stream.result(timeout=10)
    assert (final.finish, final.error) == ("error", "vLLM: RuntimeError: no room")


def test_real_vllm_on_a_gpu_answers_greedy_like_transformers(
    tiny_lm: TinyLM,  # noqa: F811
    tmp_path: Path,
) -> None:
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    parameters = {"dtype": "float32", "gpu_memory_utilization": 0.3, "enforce_eager": True,
                  "default_max_tokens": 8}  # fmt: skip
    runtime = load_runtime("vllm", tiny_lm.path, device="auto", parameters=parameters)
    try:
        runtime.warmup([2])
        prompts = ["Hello world", "The quick brown fox"]
        out = runtime.infer({"text_input": np.array([p.encode() for p in prompts], dtype=object)})
        assert list(out["text_output"]) == [tiny_lm.greedy(p, 8)[1].encode() for p in prompts]
    finally:
        runtime.unload()
