"""The vLLM backend's translations, without vLLM: sampling parameters in, delta outputs out."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from inferd.generative.sampling import SamplingParams
from inferd.generative.vllm_mapping import OutputStream, sampling_kwargs


def _out(text: str, tokens: list[int], finished: bool = False, reason: str | None = None,
         logprobs: Any = None, prompt: list[int] | None = None) -> NS:  # fmt: skip
    choice = NS(text=text, token_ids=tokens, finish_reason=reason, logprobs=logprobs)
    return NS(prompt_token_ids=prompt, outputs=[choice], finished=finished)


def test_sampling_maps_every_field_one_choice_each() -> None:
    params = SamplingParams(max_tokens=7, temperature=0.5, top_p=0.9, top_k=0, stop=("\n",),
                            seed=3, n=4, ignore_eos=True, presence_penalty=0.1,
                            frequency_penalty=-0.2, repetition_penalty=1.3, logprobs=2)  # fmt: skip
    assert sampling_kwargs(params) == {
        "n": 1, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": -1, "stop": ["\n"],
        "seed": 3, "ignore_eos": True, "presence_penalty": 0.1, "frequency_penalty": -0.2,
        "repetition_penalty": 1.3, "logprobs": 2, "skip_special_tokens": True,
    }  # fmt: skip
    assert sampling_kwargs(SamplingParams(top_k=5))["top_k"] == 5


def test_delta_outputs_become_events_with_counts_and_the_finish() -> None:
    stream = OutputStream()
    first = stream.event(_out("Hel", [5, 6], prompt=[1, 2, 3]))
    assert (first.text, first.token, first.finish) == ("Hel", 6, None)
    assert (first.prompt_tokens, first.completion_tokens) == (3, 2)
    last = stream.event(_out("lo", [7], finished=True, reason="length"))
    assert (last.text, last.token, last.finish, last.completion_tokens) == ("lo", None, "length", 3)
    assert stream.finish == "length"


@pytest.mark.parametrize(("reason", "finish"),
                         [("stop", "stop"), ("abort", "cancelled"), (None, "stop")])  # fmt: skip
def test_vllm_reasons_map_to_inferds(reason: str | None, finish: str) -> None:
    assert OutputStream().event(_out("", [], finished=True, reason=reason)).finish == finish


def test_logprobs_keep_the_chosen_and_the_top_by_rank() -> None:
    found = [
        {9: NS(logprob=-0.5, rank=2), 4: NS(logprob=-0.1, rank=1), 8: NS(logprob=-3.0, rank=3)},
        {4: NS(logprob=-0.2, rank=1)},
    ]
    event = OutputStream(top=2).event(_out("ab", [9, 4], logprobs=found))
    assert [(e.token, e.logprob, e.top) for e in event.logprobs] == [
        (9, -0.5, ((4, -0.1), (9, -0.5))),
        (4, -0.2, ((4, -0.2),)),
    ]
    assert OutputStream(top=None).event(_out("ab", [9, 4], logprobs=found)).logprobs == ()


def test_failure_and_cancellation_are_last_events_with_the_counts_so_far() -> None:
    stream = OutputStream(prompt_tokens=4)
    stream.event(_out("x", [1]))
    failed = stream.failed("vLLM: boom")
    assert (failed.finish, failed.error, failed.completion_tokens) == ("error", "vLLM: boom", 1)
    assert OutputStream().cancelled().finish == "cancelled"
