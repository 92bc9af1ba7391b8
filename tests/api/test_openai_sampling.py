"""Sampling as the unchanged ``openai`` client sends it, against the in-process app (ASGI
transport): every parameter honoured, checked against ``model.generate`` or the model's own
logits where there is a reference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch
from fixtures.generative import MODEL, TinyLM, lm_repository, tiny_lm  # noqa: F401

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.settings import Settings

PROMPT = "The quick brown fox"
NO_EOS = {"ignore_eos": True}


@pytest.fixture
async def client(tiny_lm: TinyLM, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:  # noqa: F811
    repo = lm_repository(tmp_path / "repo", tiny_lm)
    app: HttpApp = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=60)
    async with openai.AsyncOpenAI(base_url="http://t/openai/v1", api_key="none",
                                  http_client=http, max_retries=0) as c:  # fmt: skip
        yield c
    await app.dataplane.stop()


def _ids(lm: TinyLM, text: str) -> list[int]:
    ids: list[int] = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def _reference(lm: TinyLM, prompt: str, n: int, **kwargs: Any) -> list[int]:
    """``model.generate`` greedy, run to ``n`` tokens."""
    ids = torch.tensor([_ids(lm, prompt)])
    out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                            min_new_tokens=n, do_sample=False, **kwargs)  # fmt: skip
    return [int(t) for t in out[0, ids.shape[1] :]]


async def test_seed_n_top_k_top_p_max_tokens_stop_and_usage(
    client: openai.AsyncOpenAI, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    kw: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, "max_tokens": 10}
    two = await client.completions.create(**kw, n=2, seed=7, temperature=1.0, extra_body=NO_EOS)
    again = await client.completions.create(**kw, n=2, seed=7, temperature=1.0,
                                            extra_body=NO_EOS)  # fmt: skip
    alone = await client.completions.create(**kw, seed=8, temperature=1.0, extra_body=NO_EOS)
    assert [c.text for c in two.choices] == [c.text for c in again.choices]
    assert two.choices[1].text == alone.choices[0].text  # choice i is seeded seed + i
    assert two.usage is not None
    assert two.usage.completion_tokens == 20  # both choices, 10 each
    assert two.usage.prompt_tokens == len(_ids(tiny_lm, PROMPT))  # the prompt counted once
    assert {c.finish_reason for c in two.choices} == {"length"}
    greedy = tiny_lm.tokenizer.decode(_reference(tiny_lm, PROMPT, 10), skip_special_tokens=True)
    for narrow in ({"extra_body": {**NO_EOS, "top_k": 1}}, {"top_p": 1e-6, "extra_body": NO_EOS}):
        done = await client.completions.create(**kw, temperature=1.5, seed=1, **narrow)
        assert done.choices[0].text == greedy  # one token left to draw from: the argmax
    stop = greedy[3:5]
    cut = greedy.find(stop)
    done = await client.completions.create(**kw, temperature=0, stop=["\x00", stop])
    assert done.choices[0].text == greedy[:cut]
    assert done.choices[0].finish_reason == "stop"


async def test_repetition_penalty_is_hugging_faces(
    client: openai.AsyncOpenAI, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    expected = _reference(tiny_lm, PROMPT, 24, repetition_penalty=1.8)
    assert expected != _reference(tiny_lm, PROMPT, 24)  # the penalty changes this output
    done = await client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=24, temperature=0,
        extra_body={**NO_EOS, "repetition_penalty": 1.8},
    )  # fmt: skip
    assert done.choices[0].text == tiny_lm.tokenizer.decode(expected, skip_special_tokens=True)


class _OpenAIPenalties:
    """OpenAI's formula as a transformers logits processor: the reference for the engine."""

    def __init__(self, start: int, presence: float, frequency: float) -> None:
        self.start, self.presence, self.frequency = start, presence, frequency

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros_like(scores)
        output = input_ids[:, self.start :]
        counts.scatter_add_(1, output, torch.ones_like(output, dtype=scores.dtype))
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


async def test_presence_and_frequency_penalties_are_openais(
    client: openai.AsyncOpenAI, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    import transformers

    start = len(_ids(tiny_lm, PROMPT))
    rule = _OpenAIPenalties(start, presence=0.7, frequency=1.3)
    expected = _reference(tiny_lm, PROMPT, 24,
                          logits_processor=transformers.LogitsProcessorList([rule]))  # fmt: skip
    assert expected != _reference(tiny_lm, PROMPT, 24)
    done = await client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=24, temperature=0, presence_penalty=0.7,
        frequency_penalty=1.3, extra_body=NO_EOS,
    )  # fmt: skip
    assert done.choices[0].text == tiny_lm.tokenizer.decode(expected, skip_special_tokens=True)


def _model_logprobs(lm: TinyLM, prompt: list[int], output: list[int]) -> torch.Tensor:
    """log_softmax of the model's logits at each output place (the reference)."""
    with torch.no_grad():
        logits = lm.model(torch.tensor([prompt + output])).logits[0]
    return torch.log_softmax(logits[len(prompt) - 1 : -1].float(), dim=-1)


async def test_completion_logprobs_are_the_models_streamed_or_not(
    client: openai.AsyncOpenAI, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    kw: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, "max_tokens": 8, "temperature": 0,
                          "logprobs": 3, "extra_body": NO_EOS}  # fmt: skip
    done = await client.completions.create(**kw)
    lp = done.choices[0].logprobs
    assert lp is not None
    assert lp.tokens is not None
    assert lp.token_logprobs is not None
    assert lp.top_logprobs is not None
    assert lp.text_offset is not None
    output = _reference(tiny_lm, PROMPT, 8)
    expected = _model_logprobs(tiny_lm, _ids(tiny_lm, PROMPT), output)
    assert lp.token_logprobs == pytest.approx([float(expected[i, t]) for i, t in enumerate(output)],
                                              abs=1e-4)  # fmt: skip
    assert lp.tokens == [tiny_lm.tokenizer.decode([t]) for t in output]
    for i, top in enumerate(lp.top_logprobs):
        best = torch.topk(expected[i], 3).values.tolist()  # greedy: the chosen is the first
        assert 1 <= len(top) <= 3  # texts of different tokens may coincide (keys)
        assert all(min(abs(v - b) for b in best) < 1e-4 for v in top.values())
    assert lp.text_offset[0] == 0
    assert lp.text_offset[1] == len(lp.tokens[0])
    streamed: list[float] = []
    async for chunk in await client.completions.create(**kw, stream=True):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            streamed += chunk.choices[0].logprobs.token_logprobs or []
    assert streamed == pytest.approx(lp.token_logprobs, abs=1e-6)


async def test_chat_logprobs_and_top_logprobs(
    client: openai.AsyncOpenAI, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    messages: Any = [{"role": "user", "content": "Hi"}]
    done = await client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=6, temperature=0, logprobs=True,
        top_logprobs=2, extra_body=NO_EOS,
    )  # fmt: skip
    content = done.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None
    assert len(content) == 6
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy: the best
        assert entry.bytes == list(entry.token.encode())
    assert "".join(e.token for e in content) == done.choices[0].message.content
    plain = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2)
    assert plain.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL, messages=messages, top_logprobs=2)
    assert (
        info.value.body
        == "top_logprobs: expected logprobs: true with it, got logprobs absent or false"
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"echo": True}, "echo: expected it left out (inferd does not support it), got true"),
        ({"best_of": 3}, "best_of: expected it left out (inferd does not support it), got 3"),
        ({"logit_bias": {"50": 10}}, "logit_bias: expected it left out"),
        ({"suffix": "end"}, "suffix: expected it left out"),
    ],
)
async def test_sampling_fields_not_honoured_are_refused_not_ignored(
    client: openai.AsyncOpenAI, extra: dict[str, Any], expected: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2, **extra)
    assert str(info.value.body).startswith(expected)
    await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2, best_of=1,
                                    echo=False, logit_bias={})  # fmt: skip
