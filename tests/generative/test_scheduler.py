"""Scheduler: the token budget per step, prompt chunks, joining and leaving."""

from __future__ import annotations

from inferd.generative.sampling import SamplingParams
from inferd.generative.scheduler import Scheduler
from inferd.generative.sequence import Sequence
from inferd.generative.text import TextStream


def _seq(prompt_tokens: int) -> Sequence:
    return Sequence(list(range(prompt_tokens)), SamplingParams(), TextStream(str), print, None)


def test_a_long_prompt_is_chunked_while_running_sequences_decode() -> None:
    scheduler = Scheduler(max_running=8, token_budget=10, min_prefill=2)
    running = [_seq(3) for _ in range(4)]
    for seq in running:
        scheduler.add(seq)
        scheduler.plan()
        seq.prefilled = 3
        scheduler.promote(seq)
    long = _seq(25)
    scheduler.add(long)
    chunks = []
    while long in scheduler.prefilling or long in scheduler.waiting:
        plan = scheduler.plan()
        assert plan.decode == running  # every running sequence gets its token every step
        (seq, tokens), *_ = plan.prefill
        assert len(plan.decode) + tokens <= 10
        chunks.append(tokens)
        long.prefilled += tokens
        if long.prefilled == 25:
            scheduler.promote(long)
    assert chunks == [6, 6, 6, 6, 1]
    assert scheduler.running == [*running, long]


def test_the_first_prompt_progresses_even_when_decoding_fills_the_budget() -> None:
    scheduler = Scheduler(max_running=64, token_budget=4, min_prefill=3)
    for seq in [_seq(1) for _ in range(5)]:
        scheduler.running.append(seq)
    waiting = _seq(10)
    scheduler.add(waiting)
    plan = scheduler.plan()
    assert plan.prefill == [(waiting, 3)]


def test_max_running_holds_prompts_back_until_a_slot_is_free() -> None:
    scheduler = Scheduler(max_running=2, token_budget=100)
    a, b, c = _seq(2), _seq(2), _seq(2)
    for seq in (a, b, c):
        scheduler.add(seq)
    plan = scheduler.plan()
    assert [s for s, _ in plan.prefill] == [a, b]
    assert list(scheduler.waiting) == [c]
    scheduler.remove(a)
    assert [s for s, _ in scheduler.plan().prefill] == [b, c]


def test_cancelled_sequences_are_dropped_wherever_they_are() -> None:
    scheduler = Scheduler(max_running=1, token_budget=100)
    running, waiting = _seq(2), _seq(2)
    scheduler.running.append(running)
    scheduler.add(waiting)
    running.cancelled = waiting.cancelled = True
    plan = scheduler.plan()
    assert plan.dropped == [running, waiting]
    assert not scheduler.busy
