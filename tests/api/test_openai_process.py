"""The ``openai`` Python client, unchanged, against a real ``inferd serve`` with auth on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from fixtures.generative import MODEL, TinyLM, lm_repository, tiny_lm  # noqa: F401
from fixtures.servers import Server

from inferd.api.openai import chat_prompt

pytestmark = pytest.mark.slow
ADMIN = "bootstrap-admin-key-0123456789"
PROMPTS = ["Hello world", "The quick brown fox", "a", "inferd serves models", "0123",
           "Continuous batching lets new sequences join", "How are you?", "!"] * 2  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tiny_lm: TinyLM,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("openai-home")
    repo = lm_repository(tmp_path_factory.mktemp("openai-repo"), tiny_lm)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERD_ADMIN_KEY", ADMIN)
        srv = Server(repo, home, extra=["--auth", "on"])
    with srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[openai.OpenAI]:
    created = httpx.post(f"{server.url}/v1/keys", json={"role": "predict", "models": [MODEL]},
                         headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)  # fmt: skip
    created.raise_for_status()
    with openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=created.json()["key"],
                       max_retries=0, timeout=120) as c:  # fmt: skip
        yield c


def test_models_completion_and_chat_stream(client: openai.OpenAI, tiny_lm: TinyLM) -> None:  # noqa: F811
    assert [m.id for m in client.models.list()] == [MODEL]
    done = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=12, temperature=0)
    assert done.choices[0].text == tiny_lm.greedy(PROMPTS[0], 12)[1]
    assert done.usage is not None
    messages = [{"role": "user", "content": "Hi there"}]
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=12, temperature=0, stream=True,  # type: ignore[arg-type]
    )  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == tiny_lm.greedy(chat_prompt(tiny_lm.tokenizer, messages), 12)[1]


def test_16_concurrent_streams_are_each_correct(client: openai.OpenAI, tiny_lm: TinyLM) -> None:  # noqa: F811
    def run(prompt: str) -> str:
        stream = client.completions.create(model=MODEL, prompt=prompt, max_tokens=20,
                                           temperature=0, stream=True)  # fmt: skip
        return "".join(chunk.choices[0].text for chunk in stream if chunk.choices)

    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(run, PROMPTS))
    assert texts == [tiny_lm.greedy(p, 20)[1] for p in PROMPTS]


def test_errors_reach_the_client_as_its_exceptions(client: openai.OpenAI, server: Server) -> None:
    # inferd's error shape, {"error": "<field: expected ..., got ...>"}: the SDK's body.
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=MODEL, prompt="x", temperature=5)
    assert bad.value.body == "temperature: expected a number in [0.0, 2.0], got 5.0"
    with pytest.raises(openai.PermissionDeniedError) as other:  # the key is for tiny-lm only
        client.completions.create(model="nope", prompt="x")
    assert "nope" in str(other.value.body)
    anonymous = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.models.list()


def _cancelled(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {ADMIN}"},
                     timeout=10).text  # fmt: skip
    for line in text.splitlines():
        if line.startswith("inferd_generate_sequences_total") and 'finish="cancelled"' in line:
            return float(line.split()[-1])
    return 0.0


def test_closing_a_stream_cancels_its_sequence(client: openai.OpenAI, server: Server) -> None:
    before = _cancelled(server)
    stream = client.completions.create(model=MODEL, prompt="Hello", max_tokens=128, stream=True,
                                       extra_body={"ignore_eos": True})  # fmt: skip
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 30
    while _cancelled(server) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _cancelled(server) == before + 1
