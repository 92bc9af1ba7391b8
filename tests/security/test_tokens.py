"""Token budgets per minute: reserve at admission, settle with what was used."""

from __future__ import annotations

import pytest

from inferd.errors import InvalidInput, RateLimited
from inferd.security.tokens import TokenLimits, TokensExhausted


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_request_that_does_not_fit_waits_the_seconds_named() -> None:
    clock = Clock()
    limits = TokenLimits(key_per_minute=600, clock=clock)  # 10 tokens a second
    limits.reserve("k", "m", 550)
    with pytest.raises(RateLimited) as info:
        limits.reserve("k", "m", 100)
    assert info.value.headers() == {"retry-after": "5"}  # 50 missing at 10/s
    assert "API key k: 600 tokens per minute exceeded" in info.value.message
    limits.reserve("other", "m", 600)  # buckets are per key
    clock.now += 5.0
    limits.reserve("k", "m", 100)


def test_settling_gives_back_what_was_not_generated_once() -> None:
    limits = TokenLimits(model_per_minute=100, clock=Clock())
    held = limits.reserve(None, "m", 90)
    with pytest.raises(RateLimited):
        limits.reserve(None, "m", 20)
    limits.settle(held, 30)  # 60 reserved tokens were not used
    limits.settle(held, 30)  # a second settle changes nothing
    limits.reserve(None, "m", 70)
    with pytest.raises(RateLimited):
        limits.reserve(None, "m", 1)


def test_using_more_than_reserved_is_charged() -> None:
    limits = TokenLimits(model_per_minute=100, clock=Clock())
    limits.settle(limits.reserve(None, "m", 10), 60)
    limits.reserve(None, "m", 40)
    with pytest.raises(RateLimited):
        limits.reserve(None, "m", 1)


def test_a_request_larger_than_a_minute_is_a_400_naming_max_tokens() -> None:
    limits = TokenLimits(model_per_minute=100, clock=Clock())
    with pytest.raises(InvalidInput) as info:
        limits.reserve(None, "m", 101)
    assert info.value.field == "max_tokens"
    assert "model 'm' budget of 100 tokens per minute" in info.value.message
    assert "got 101 tokens" in info.value.message


def test_key_and_model_are_taken_together_or_not_at_all() -> None:
    limits = TokenLimits(key_per_minute=100, model_per_minute=50, clock=Clock())
    with pytest.raises(InvalidInput):
        limits.reserve("k", "m", 60)  # fits the key's budget, never the model's
    limits.reserve("k", "m", 50)
    with pytest.raises(TokensExhausted, match="model 'm'") as info:
        limits.reserve("k", "m", 10)
    assert info.value.budget == "model"
    limits.reserve("k", "other", 50)  # the key still had 50: the refused call took none


def test_no_key_skips_the_key_budget_and_a_model_may_set_its_own() -> None:
    limits = TokenLimits(key_per_minute=10, model_per_minute=10, clock=Clock())
    limits.reserve(None, "m", 200, model_per_minute=1000)
    limits.reserve(None, "free", 10_000, model_per_minute=0)  # 0: this model has no budget
    with pytest.raises(InvalidInput):
        limits.reserve(None, "m", 11)  # back to the server's budget
