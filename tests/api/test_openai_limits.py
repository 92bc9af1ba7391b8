"""Token-per-minute budgets on the generative routes, through the unchanged ``openai`` client
against the in-process app (ASGI transport), with an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from fixtures.generative import MODEL, MODEL_YAML, TinyLM, lm_repository, tiny_lm  # noqa: F401

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.security.tokens import TokenLimits
from inferd.settings import Settings

PROMPT = "Hello world"
ADMIN = "bootstrap-admin-key-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def app(tiny_lm: TinyLM, tmp_path: Path) -> AsyncIterator[HttpApp]:  # noqa: F811
    repo = lm_repository(tmp_path / "repo", tiny_lm)
    application = build_app(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    assert await application.dataplane.start() == {}
    assert application.guard is not None
    application.guard.refresh()
    yield application
    await application.dataplane.stop()


def _client(app: HttpApp, key: str = ADMIN) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=60)
    return openai.AsyncOpenAI(base_url="http://t/openai/v1", api_key=key, http_client=http,
                              max_retries=0)  # fmt: skip


async def test_a_model_over_its_budget_answers_openai_429_until_tokens_are_back(
    app: HttpApp, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    clock = Clock()
    assert app.generative is not None
    app.generative.tokens = TokenLimits(model_per_minute=60, clock=clock)  # 1 token a second
    client = _client(app)
    prompt = len(tiny_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    done = await client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=40,
        temperature=0, extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert done.usage is not None
    assert done.usage.total_tokens == prompt + 40
    with pytest.raises(openai.RateLimitError) as info:
        await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40)
    missing = prompt + 40 - (60 - prompt - 40)
    assert info.value.response.headers["retry-after"] == str(missing)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "rate_limit_exceeded"
    assert body["code"] == "rate_limit_exceeded"
    assert f"model '{MODEL}': 60 tokens per minute exceeded" in body["message"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        scraped = (await c.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})).text
    assert f'inferd_generate_rate_limited_total{{budget="model",model="{MODEL}"}} 1.0' in scraped
    clock.now += missing
    chat = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
    )
    assert chat.choices[0].message.content is not None


async def test_unused_max_tokens_are_given_back_when_the_answer_ends(
    app: HttpApp, tiny_lm: TinyLM,  # noqa: F811
) -> None:  # fmt: skip
    assert app.generative is not None
    app.generative.tokens = TokenLimits(model_per_minute=130, clock=Clock())
    client = _client(app)
    _tokens, text = tiny_lm.greedy(PROMPT, 100)
    cut = next(i for i in range(4, len(text))
               if text.find(text[i : i + 2]) == i and "\ufffd" not in text[i : i + 2])  # fmt: skip
    stop = text[cut : cut + 2]  # first seen at cut: the answer ends there, well before 100
    done = await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=100,
                                           temperature=0, stop=stop)  # fmt: skip
    assert done.choices[0].text == text[:cut]
    assert done.usage is not None
    assert done.usage.completion_tokens < 100
    # 100 + prompt were reserved; only the usage stays charged, so this one fits.
    prompt = done.usage.prompt_tokens
    most = 130 - done.usage.total_tokens - prompt
    await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=most,
                                    extra_body={"ignore_eos": True})  # fmt: skip
    with pytest.raises(openai.RateLimitError):
        await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1)


async def test_each_key_has_its_own_budget_on_every_generative_route(app: HttpApp) -> None:
    assert app.generative is not None
    app.generative.tokens = TokenLimits(key_per_minute=40, clock=Clock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 timeout=60) as c:  # fmt: skip
        made = await c.post("/v1/keys", json={"role": "predict"},
                            headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
        user = {"authorization": f"Bearer {made.json()['key']}"}
        body = {"text_input": PROMPT, "parameters": {"max_tokens": 30, "ignore_eos": True}}
        r = await c.post(f"/v2/models/{MODEL}/generate", json=body, headers=user)
        assert r.status_code == 200, r.text
        r = await c.post(f"/v2/models/{MODEL}/generate_stream", json=body, headers=user)
        assert r.status_code == 429
        assert r.json()["error"].startswith("API key")
        assert int(r.headers["retry-after"]) > 0
        with pytest.raises(openai.RateLimitError):
            await _client(app, made.json()["key"]).completions.create(
                model=MODEL, prompt=PROMPT, max_tokens=30
            )
        with pytest.raises(openai.BadRequestError) as info:  # can never fit
            await _client(app, made.json()["key"]).completions.create(
                model=MODEL, prompt=PROMPT, max_tokens=45
            )
        assert str(info.value.body).startswith("max_tokens: expected prompt + max_tokens")
        other = await _client(app).completions.create(model=MODEL, prompt=PROMPT, max_tokens=30)
        assert other.usage is not None  # the admin key's budget is its own
