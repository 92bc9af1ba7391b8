"""The OpenAI-compatible routes and the V2 generate extension, in-process over ASGI."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fixtures.generative import MODEL, MODEL_YAML, TinyLM, lm_repository, tiny_lm  # noqa: F401

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.api.openai import chat_prompt
from inferd.security.policy import Group, classify_http
from inferd.settings import Settings

PROMPT = "Hello world"


@pytest.fixture
async def app(tiny_lm: TinyLM, tmp_path: Path) -> AsyncIterator[HttpApp]:  # noqa: F811
    repo = lm_repository(tmp_path / "repo", tiny_lm)
    application = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await application.dataplane.start() == {}
    yield application
    await application.dataplane.stop()


@pytest.fixture
async def client(app: HttpApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
        yield c


def _events(text: str) -> list[Any]:
    """The data of each server-sent event; ``[DONE]`` stays a string."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


async def test_completion_is_greedy_generate_with_usage(
    client: httpx.AsyncClient,
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    r = await client.post("/openai/v1/completions", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    tokens, text = tiny_lm.greedy(PROMPT, 12)
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["text"] == text
    assert answer["choices"][0]["finish_reason"] == ("length" if len(tokens) == 12 else "stop")
    prompt_tokens = len(tiny_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert answer["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                               "total_tokens": prompt_tokens + len(tokens)}  # fmt: skip


async def test_streamed_completion_sends_deltas_in_order_then_usage_and_done(
    client: httpx.AsyncClient,
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 12, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    r = await client.post("/openai/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream"
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    usage = events[-2]
    chunks = events[:-2]
    assert usage["choices"] == []
    assert "".join(c["choices"][0]["text"] for c in chunks) == tiny_lm.greedy(PROMPT, 12)[1]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage["usage"]["completion_tokens"] == len(tiny_lm.greedy(PROMPT, 12)[0])


async def test_chat_uses_the_plain_template_and_streams_role_first(
    client: httpx.AsyncClient,
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = chat_prompt(tiny_lm.tokenizer, messages)
    assert prompt == "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    expected = tiny_lm.greedy(prompt, 10)[1]
    body = {"model": MODEL, "messages": messages, "max_tokens": 10, "temperature": 0}
    r = await client.post("/openai/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"] == {"role": "assistant", "content": expected}
    r = await client.post("/openai/v1/chat/completions", json={**body, "stream": True})
    chunks = _events(r.text)[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected


async def test_stop_strings_and_n_choices_with_a_seed(
    client: httpx.AsyncClient,
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    full = tiny_lm.greedy(PROMPT, 16)[1]
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 16, "temperature": 0,
            "stop": full[4:7]}  # fmt: skip
    choice = (await client.post("/openai/v1/completions", json=body)).json()["choices"][0]
    assert choice == {"index": 0, "text": full[: full.index(full[4:7])], "finish_reason": "stop",
                      "logprobs": None}  # fmt: skip
    sampled = {"model": MODEL, "prompt": [PROMPT, "a"], "max_tokens": 8, "n": 2, "seed": 5}
    first = (await client.post("/openai/v1/completions", json=sampled)).json()
    again = (await client.post("/openai/v1/completions", json=sampled)).json()
    assert [c["index"] for c in first["choices"]] == [0, 1, 2, 3]
    assert first["choices"] == again["choices"]


async def test_models_list_holds_generative_models_only(client: httpx.AsyncClient) -> None:
    r = await client.get("/openai/v1/models")
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["data"]] == [MODEL]
    assert (await client.get(f"/openai/v1/models/{MODEL}")).json()["object"] == "model"
    assert (await client.get("/openai/v1/models/nope")).status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"temperature": 5}, 400, "temperature: expected a number in [0.0, 2.0], got 5"),
        ({"max_tokens": 1000}, 400, "max_tokens: expected an integer in [1, 128], got 1000"),
        ({"model": "nope"}, 404, "nope"),
        ({"top_p": 0}, 400, "top_p: expected a number in (0, 1], got 0"),
        ({"prompt": 3}, 400, "prompt"),
        ({"prompt": ""}, 400, "prompt: expected text of at least one token, got an empty prompt"),
    ],
)
async def test_errors_name_field_expected_and_got(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, message: str
) -> None:
    body = {"model": MODEL, "prompt": PROMPT, **change}
    r = await client.post("/openai/v1/completions", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


async def test_v2_generate_and_generate_stream(
    client: httpx.AsyncClient,
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    body = {"text_input": PROMPT, "parameters": {"max_tokens": 10}}
    expected = tiny_lm.greedy(PROMPT, 10)[1]
    r = await client.post(f"/v2/models/{MODEL}/generate", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"model_name": MODEL, "model_version": "1", "text_output": expected}
    r = await client.post(f"/v2/models/{MODEL}/versions/1/generate_stream", json=body)
    events = _events(r.text)
    assert "".join(e["text_output"] for e in events) == expected
    assert events[-1]["finish_reason"] in ("stop", "length")
    r = await client.post(f"/v2/models/{MODEL}/generate", json={"parameters": {}})
    assert r.json()["error"] == "text_input: expected field required, got nothing"


async def test_metrics_after_generation(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "ignore_eos": True}
    assert (await client.post("/openai/v1/completions", json=body)).status_code == 200
    text = (await client.get("/metrics")).text
    label = f'model="{MODEL}"'
    assert f"inferd_generate_time_to_first_token_seconds_count{{{label}}} 1.0" in text
    assert f"inferd_generate_time_per_output_token_seconds_count{{{label}}} 3.0" in text
    assert f'inferd_generate_tokens_total{{kind="completion",{label}}} 4.0' in text
    # Gauges are set at the end of a step, maybe just after the answer left: present is enough.
    assert f"inferd_generate_kv_cache_bytes{{{label}}}" in text
    assert f"inferd_generate_running_sequences{{{label}}}" in text


def test_generation_is_inference_for_auth() -> None:
    assert classify_http("/openai/v1/completions") == (Group.INFER, None)
    assert classify_http("/openai/v1/chat/completions") == (Group.INFER, None)
    assert classify_http("/openai/v1/models") == (Group.READ, None)
    assert classify_http("/v2/models/m/generate_stream") == (Group.INFER, "m")
    assert classify_http("/v2/models/m/versions/2/generate") == (Group.INFER, "m")


async def test_a_scoped_key_sees_and_uses_only_its_models(
    tiny_lm: TinyLM,  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = "bootstrap-admin-key-0123456789"
    repo = lm_repository(tmp_path / "repo", tiny_lm)
    app = build_app(Settings(home=tmp_path, model_repository=repo, admin_key=admin))
    assert await app.dataplane.start() == {}
    try:
        assert app.guard is not None
        app.guard.refresh()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                     timeout=60) as c:  # fmt: skip
            keys = {}
            for models in ([MODEL], ["other"]):
                r = await c.post("/v1/keys", json={"role": "predict", "models": models},
                                 headers={"authorization": f"Bearer {admin}"})  # fmt: skip
                keys[models[0]] = {"authorization": f"Bearer {r.json()['key']}"}
            body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2}
            assert (await c.post("/openai/v1/completions", json=body)).status_code == 401
            r = await c.post("/openai/v1/completions", json=body, headers=keys[MODEL])
            assert r.status_code == 200, r.text
            r = await c.post("/openai/v1/completions", json=body, headers=keys["other"])
            assert r.status_code == 403, r.text
            r = await c.get("/openai/v1/models", headers=keys["other"])
            assert r.json()["data"] == []
    finally:
        await app.dataplane.stop()


async def test_an_experiment_routes_openai_requests_by_user(
    tiny_lm: TinyLM,  # noqa: F811
    tmp_path: Path,
) -> None:
    repo = lm_repository(tmp_path / "repo", tiny_lm, MODEL_YAML + "version_policy: all\n")
    shutil.copytree(repo / MODEL / "1", repo / MODEL / "2")
    app = build_app(Settings(home=tmp_path, model_repository=repo, poll_interval_s=0.2))
    assert await app.dataplane.start() == {}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                     timeout=60) as c:  # fmt: skip
            variants = [{"name": "a", "version": 1, "weight": 0.5},
                        {"name": "b", "version": 2, "weight": 0.5}]  # fmt: skip
            r = await c.post("/v1/experiments", json={"name": "lm", "model": MODEL,
                                                      "variants": variants})  # fmt: skip
            exp_id = r.json()["id"]
            assert (await c.post(f"/v1/experiments/{exp_id}/start")).status_code == 200
            seen: dict[str, set[str]] = {}
            for i in range(24):
                user = f"user-{i % 8}"
                body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 1, "user": user}
                r = await c.post("/openai/v1/completions", json=body)
                assert r.status_code == 200, r.text
                variant = r.headers["inferd-experiment-variant"]
                assert r.headers["x-model-version"] == {"a": "1", "b": "2"}[variant]
                seen.setdefault(user, set()).add(variant)
            assert all(len(v) == 1 for v in seen.values())  # sticky per user
            assert set().union(*seen.values()) == {"a", "b"}
            results = (await c.get(f"/v1/experiments/{exp_id}/results")).json()
            assert sum(v["requests"] for v in results["variants"]) == 24
    finally:
        await app.dataplane.stop()


async def test_a_failure_after_the_stream_began_is_an_error_event(
    app: HttpApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: Any = app.dataplane.manager.get(MODEL, None).runtime.engine  # type: ignore[union-attr]

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.model, "forward", boom)
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "stream": True}
    r = await client.post("/openai/v1/completions", json=body)
    assert r.status_code == 200
    assert _events(r.text) == [{"error": "generation failed: RuntimeError: boom"}, "[DONE]"]
    r = await client.post("/openai/v1/completions", json={**body, "stream": False})
    assert r.status_code == 500
    assert r.json() == {"error": "generation failed: RuntimeError: boom"}
