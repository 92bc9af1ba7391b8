"""Sampling parameters: errors name the field, the range and the value; sampling keeps to
top_k / top_p."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from inferd.errors import InvalidInput
from inferd.generative.sampling import SamplingParams, new_generator, pick


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", -0.5, "temperature: expected a number in [0.0, 2.0], got -0.5"),
        ("temperature", "hot", "temperature: expected a number in [0.0, 2.0], got 'hot'"),
        ("max_tokens", 513, "max_tokens: expected an integer in [1, 512], got 513"),
        ("top_p", 0.0, "top_p: expected a number in (0, 1], got 0.0"),
        ("top_k", -1, "top_k: expected an integer in [0, 1048576], got -1"),
        ("n", 0, "n: expected an integer in [1, 16], got 0"),
        ("stop", ("",), "stop: expected at most 4 non-empty strings, got ['']"),
    ],
)
def test_bad_values_name_field_expected_and_got(field: str, value: Any, expected: str) -> None:
    with pytest.raises(InvalidInput) as err:
        SamplingParams(**{field: value}).checked(max_tokens_limit=512)
    assert err.value.message == expected


def test_top_k_and_top_p_keep_to_the_likely_tokens() -> None:
    logits = torch.tensor([4.0, 3.0, 2.0, -1.0, -2.0])
    generator = new_generator(torch, 0)
    top_k = {pick(torch, logits, SamplingParams(temperature=1.0, top_k=2), generator)
             for _ in range(200)}  # fmt: skip
    assert top_k == {0, 1}
    # softmax: 0.66, 0.24, 0.09, ...: top_p 0.8 keeps the first two
    top_p = {pick(torch, logits, SamplingParams(temperature=1.0, top_p=0.8), generator)
             for _ in range(200)}  # fmt: skip
    assert top_p == {0, 1}
    assert pick(torch, logits, SamplingParams(temperature=0.0), generator) == 0


def test_the_same_seed_draws_the_same_tokens() -> None:
    logits = torch.zeros(50)
    params = SamplingParams(temperature=1.0)
    first = [pick(torch, logits, params, g) for g in [new_generator(torch, 3)] for _ in range(20)]
    again = [pick(torch, logits, params, g) for g in [new_generator(torch, 3)] for _ in range(20)]
    assert first == again
    assert len(set(first)) > 1
