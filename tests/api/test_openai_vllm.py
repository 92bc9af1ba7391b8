"""The OpenAI routes over the vLLM backend's adapter, through the unchanged ``openai`` client:
``platform: vllm`` loaded by the model manager, with vLLM's engine replaced by a stand-in
(the external boundary; no vLLM or GPU here). The stand-in answers each prompt with its own
tokens reversed, one token per delta, as vLLM's DELTA outputs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import httpx
import openai
import pytest
from fixtures.generative import MODEL, TinyLM, lm_repository, tiny_lm  # noqa: F401

from inferd.api.app import build_app
from inferd.runtimes import vllm as vllm_runtime
from inferd.runtimes.vllm import VllmApi, VllmEngine, VllmRuntime
from inferd.settings import Settings

PROMPT = "The quick brown fox"
YAML = "platform: vllm\nparameters:\n  max_tokens: 64\n  gpu_memory_utilization: 0.5\n"


class ReversingLLM:
    """vLLM's AsyncLLM as far as the adapter uses it."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    async def generate(self, prompt: dict[str, Any], sampling: NS, request_id: str
                       ) -> AsyncIterator[NS]:  # fmt: skip
        ids = list(reversed(prompt["prompt_token_ids"]))[: sampling.max_tokens]
        for i, token in enumerate(ids):
            await asyncio.sleep(0)
            text = self.tokenizer.decode(ids[: i + 1]).removeprefix(self.tokenizer.decode(ids[:i]))
            done = i == len(ids) - 1
            reason = ("length" if len(ids) == sampling.max_tokens else "stop") if done else None
            choice = NS(text=text, token_ids=[token], logprobs=None, finish_reason=reason)
            yield NS(prompt_token_ids=prompt["prompt_token_ids"], outputs=[choice], finished=done)

    async def abort(self, request_id: str) -> None:
        pass

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


@pytest.fixture
async def client(
    tiny_lm: TinyLM,  # noqa: F811
    tmp_path: Path,
    loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[openai.AsyncOpenAI]:
    def start(runtime: VllmRuntime) -> VllmEngine:
        api = VllmApi(lambda **kw: NS(**kw), "DELTA", lambda **kw: dict(kw))
        return VllmEngine(ReversingLLM(tiny_lm.tokenizer), loop, api, tiny_lm.tokenizer, 256)

    monkeypatch.setattr(vllm_runtime, "missing", lambda *_: None)  # "vLLM and a GPU are here"
    monkeypatch.setattr(VllmRuntime, "_start", start)
    monkeypatch.setattr(VllmRuntime, "_reserved", lambda self: 1 << 30)
    repo = lm_repository(tmp_path / "repo", tiny_lm, YAML)
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=60)
    async with openai.AsyncOpenAI(base_url="http://t/openai/v1", api_key="none",
                                  http_client=http, max_retries=0) as c:  # fmt: skip
        yield c
    await app.dataplane.stop()


async def test_completions_chat_and_streams_come_from_the_vllm_engine(
    client: openai.AsyncOpenAI, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    ids = tiny_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    expected = tiny_lm.tokenizer.decode(list(reversed(ids))[:3])
    assert [m.id for m in (await client.models.list()).data] == [MODEL]
    done = await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3)
    assert done.choices[0].text == expected
    assert done.choices[0].finish_reason == "length"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (len(ids), 3)
    streamed = [c.choices[0].text async for c in await client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=3, stream=True) if c.choices]  # fmt: skip
    assert "".join(streamed) == expected
    assert len([t for t in streamed if t]) >= 2  # token by token, not one piece
    chat = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=64, n=2
    )
    assert [c.finish_reason for c in chat.choices] == ["stop", "stop"]  # the prompt ran out
    assert chat.choices[0].message.content == chat.choices[1].message.content
