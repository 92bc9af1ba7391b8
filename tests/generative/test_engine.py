"""The engine against ``model.generate`` on a tiny random Llama built by the session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import torch
import transformers
from fixtures.generative import TinyLM, tiny_lm  # noqa: F401 - the fixture

from inferd.generative.engine import Engine
from inferd.generative.sampling import SamplingParams
from inferd.generative.sequence import AsyncStream, Event, SyncStream

PROMPTS = ["Hello world", "The quick brown fox jumps over the lazy dog. " * 4, "a",
           "inferd serves models", "0123", "Continuous batching", "How are you?", "!"]  # fmt: skip
GREEDY = SamplingParams(max_tokens=24, temperature=0.0)


def _engine(lm: TinyLM, **kwargs: int) -> Engine:
    return Engine(lm.model, lm.tokenizer, torch, transformers.DynamicCache, **kwargs)


@pytest.fixture
def engine(tiny_lm: TinyLM) -> Iterator[Engine]:  # noqa: F811
    engine = _engine(tiny_lm, max_running=16, token_budget=32)
    engine.start()
    yield engine
    engine.stop()


def _run(engine: Engine, prompt: str, params: SamplingParams) -> tuple[str, Event]:
    stream = SyncStream()
    engine.submit(engine.encode(prompt), params, stream.sink)
    return stream.result(timeout=120)


def test_greedy_output_equals_model_generate_for_16_concurrent_streams(
    engine: Engine,
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    prompts = PROMPTS * 2
    streams = []
    for prompt in prompts:
        stream = SyncStream()
        engine.submit(engine.encode(prompt), GREEDY, stream.sink)
        streams.append(stream)
    for prompt, stream in zip(prompts, streams, strict=True):
        text, final = stream.result(timeout=120)
        tokens, expected = tiny_lm.greedy(prompt, GREEDY.max_tokens)
        assert text == expected, prompt
        assert final.completion_tokens == len(tokens)
        assert final.prompt_tokens == len(engine.encode(prompt))
        assert final.finish == ("length" if len(tokens) == GREEDY.max_tokens else "stop")


async def test_stream_yields_tokens_in_order(engine: Engine, tiny_lm: TinyLM) -> None:  # noqa: F811
    stream = AsyncStream(asyncio.get_running_loop())
    stream.sequence = engine.submit(engine.encode(PROMPTS[0]), GREEDY, stream.sink)
    events = [event async for event in stream]
    tokens, expected = tiny_lm.greedy(PROMPTS[0], GREEDY.max_tokens)
    assert [e.token for e in events[:-1]] == tokens[: len(events) - 1]
    assert [e.completion_tokens for e in events[:-1]] == list(range(1, len(events)))
    assert "".join(e.text for e in events) == expected
    assert events[-1].finish is not None
    assert events[-1].token is None


def test_stop_string_ends_the_output_before_it(engine: Engine, tiny_lm: TinyLM) -> None:  # noqa: F811
    _, full = tiny_lm.greedy(PROMPTS[3], GREEDY.max_tokens)
    stop = full[6:9]
    text, final = _run(engine, PROMPTS[3], SamplingParams(24, 0.0, stop=(stop, "\x00never")))
    assert text == full[: full.index(stop)]
    assert final.finish == "stop"


def test_a_seed_draws_the_same_tokens_alone_or_in_company(engine: Engine) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, top_k=50, seed=7)
    alone = _run(engine, PROMPTS[0], params)[0]
    company = [SyncStream() for _ in range(5)]
    for i, stream in enumerate(company):
        engine.submit(engine.encode(PROMPTS[i]), SamplingParams(16, 1.0, seed=i), stream.sink)
    assert _run(engine, PROMPTS[0], params)[0] == alone
    for stream in company:
        stream.result(timeout=120)


def test_cancel_frees_the_slot_at_the_next_step(tiny_lm: TinyLM) -> None:  # noqa: F811
    engine = _engine(tiny_lm, max_running=4)  # stepped by hand: no thread
    seen: list[Event] = []
    long = SamplingParams(max_tokens=100, temperature=0.0, ignore_eos=True)
    seq = engine.submit(engine.encode(PROMPTS[0]), long, seen.append)
    other = engine.submit(engine.encode(PROMPTS[1]), long, lambda e: None)
    engine.admit()
    engine.step()
    engine.step()
    assert engine.batch.rows == [seq, other]
    engine.cancel(seq)
    plan = engine.step()
    assert plan.dropped == [seq]
    assert engine.batch.rows == [other]
    assert seen[-1].finish == "cancelled"
    assert len(seen) == 3  # two tokens, then the end


def test_new_sequences_join_between_decode_steps(tiny_lm: TinyLM) -> None:  # noqa: F811
    engine = _engine(tiny_lm, max_running=4)
    first: list[Event] = []
    late: list[Event] = []
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
    engine.submit(engine.encode(PROMPTS[1]), params, first.append)
    engine.admit()
    engine.step()
    engine.step()
    engine.submit(engine.encode(PROMPTS[0]), params, late.append)
    engine.admit()
    engine.step()  # the first decodes, the late one prefills and joins
    assert len(first) == 3
    assert len(late) == 1
    while engine.scheduler.busy:
        engine.step()
    assert first[-1].finish == late[-1].finish == "length"
    assert not engine.batch.rows
    assert engine.batch.mask is None
    texts = ["".join(e.text for e in events) for events in (first, late)]
    assert texts == [tiny_lm.greedy(p, 6)[1] for p in (PROMPTS[1], PROMPTS[0])]


def test_running_streams_get_a_token_every_step_while_a_long_prompt_prefills(
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    engine = _engine(tiny_lm, max_running=4, token_budget=20)
    params = SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True)
    running: list[Event] = []
    engine.submit(engine.encode(PROMPTS[0]), params, running.append)
    engine.admit()
    engine.step()
    long_prompt = engine.encode(PROMPTS[1] * 3)
    assert len(long_prompt) > 60
    late: list[Event] = []
    engine.submit(long_prompt, params, late.append)
    engine.admit()
    steps = 0
    while not late:
        before = len(running)
        engine.step()
        steps += 1
        assert len(running) == before + 1  # the running stream never skips a step
    assert steps >= 3  # the prompt took several chunks of at most 19 tokens


def test_stop_cancels_what_is_still_running(tiny_lm: TinyLM) -> None:  # noqa: F811
    engine = _engine(tiny_lm)
    engine.start()
    stream = SyncStream()
    params = SamplingParams(max_tokens=900, temperature=0.0, ignore_eos=True)
    engine.submit(engine.encode(PROMPTS[0]), params, stream.sink)
    engine.stop()  # noticed after the step under way, long before 900 tokens
    _, final = stream.result(timeout=60)
    assert final.finish == "cancelled"


def test_a_caller_that_cannot_take_events_is_cancelled_not_the_engine(
    tiny_lm: TinyLM,  # noqa: F811
) -> None:
    engine = _engine(tiny_lm)

    def closed_loop(event: Event) -> None:
        raise RuntimeError("Event loop is closed")

    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    gone = engine.submit(engine.encode(PROMPTS[0]), params, closed_loop)
    fine: list[Event] = []
    engine.submit(engine.encode(PROMPTS[2]), params, fine.append)
    engine.admit()
    engine.step()
    assert gone.cancelled
    engine.step()
    assert gone.finish == "cancelled"
    while engine.scheduler.busy:
        engine.step()
    assert fine[-1].finish == "length"


def test_the_batch_cache_grows_with_rows_and_empties(tiny_lm: TinyLM) -> None:  # noqa: F811
    engine = _engine(tiny_lm)
    params = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
    engine.submit(engine.encode(PROMPTS[0]), params, lambda e: None)
    engine.admit()
    engine.step()
    one = engine.batch.bytes
    engine.submit(engine.encode(PROMPTS[0]), params, lambda e: None)
    engine.admit()
    engine.step()
    assert engine.batch.bytes > one > 0
    while engine.scheduler.busy:
        engine.step()
    assert engine.batch.bytes == 0
