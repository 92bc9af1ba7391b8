"""Penalties (OpenAI's presence and frequency, Hugging Face's repetition) and log-probability
entries, on hand-made logits."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from inferd.errors import InvalidInput
from inferd.generative.penalties import Penalties
from inferd.generative.sampling import SamplingParams, new_generator, pick, token_logprob


def test_presence_and_frequency_follow_openai() -> None:
    penalties = Penalties(torch, prompt=[4], presence=0.5, frequency=0.25)
    logits = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0])
    penalties.apply(logits)  # the first row fixes the vocabulary size
    for token in (1, 1, 1, 2):
        penalties.add(token)
    out = penalties.apply(logits)
    # token 1: 3 times -> 1 - 3 * 0.25 - 0.5; token 2: once -> 1 - 0.25 - 0.5; the prompt's 4: none
    assert out.tolist() == pytest.approx([1.0, -0.25, 0.25, 1.0, 1.0])
    assert logits.tolist() == [1.0] * 5  # the row given is not changed


def test_repetition_follows_hugging_face_over_prompt_and_output() -> None:
    penalties = Penalties(torch, prompt=[0, 1], repetition=2.0)
    penalties.add(3)  # before the first row: counted when the tensors are made
    out = penalties.apply(torch.tensor([4.0, -4.0, 4.0, 1.0]))
    assert out.tolist() == [2.0, -8.0, 4.0, 0.5]


def test_a_penalty_can_turn_greedy_away_from_a_repeat() -> None:
    logits = torch.tensor([3.0, 2.9, 0.0])
    params = SamplingParams(temperature=0.0, frequency_penalty=1.0)
    penalties = Penalties(torch, [], frequency=1.0)
    generator = new_generator(torch, 0)
    first = pick(torch, logits, params, generator, penalties)
    penalties.add(first)
    assert (first, pick(torch, logits, params, generator, penalties)) == (0, 1)


def test_logprob_entry_is_the_chosen_token_and_the_best_alternatives() -> None:
    logprobs = torch.log_softmax(torch.tensor([2.0, 1.0, 0.0, -1.0]), dim=-1)
    entry = token_logprob(torch, logprobs, 2, 2)
    assert entry.token == 2
    assert entry.logprob == pytest.approx(float(logprobs[2]))
    assert [t for t, _ in entry.top] == [0, 1]
    assert entry.top[0][1] == pytest.approx(float(logprobs[0]))
    assert token_logprob(torch, logprobs, 1, 0).top == ()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("presence_penalty", 2.5, "presence_penalty: expected a number in [-2.0, 2.0], got 2.5"),
        ("frequency_penalty", "x", "frequency_penalty: expected a number in [-2.0, 2.0], got 'x'"),
        ("repetition_penalty", 0.0, "repetition_penalty: expected a number in (0, 2], got 0.0"),
        ("logprobs", 21, "logprobs: expected an integer in [0, 20], got 21"),
    ],
)
def test_bad_values_name_field_expected_and_got(field: str, value: Any, expected: str) -> None:
    with pytest.raises(InvalidInput) as err:
        SamplingParams(**{field: value}).checked(max_tokens_limit=16)
    assert err.value.message == expected
