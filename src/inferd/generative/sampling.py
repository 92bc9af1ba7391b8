"""Sampling parameters, checked once, and choosing the next token from a row of logits.

Each sequence has its own ``torch.Generator`` (seeded from ``seed``, else from the OS), so a
seeded request draws the same tokens whatever else shares its batch. The order on a row:
penalties (:mod:`inferd.generative.penalties`), temperature, top-k, top-p, the draw.
Log-probabilities are those of the model's own distribution (before penalties and
temperature), as vLLM reports them by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferd.errors import InvalidInput
from inferd.generative.penalties import Penalties

MAX_STOP_STRINGS = 4
MAX_N = 16
MAX_LOGPROBS = 20


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How one request samples; :meth:`checked` validates every field.

    Attributes:
        max_tokens: most tokens to generate per choice.
        temperature: 0 picks the most likely token (greedy); higher flattens the distribution.
        top_p: keep the smallest set of tokens whose probability adds up to this.
        top_k: keep this many most likely tokens; 0 keeps all.
        stop: strings that end the output (not included in it).
        seed: seeds the sequence's random generator; None draws from the OS.
        n: choices generated for the prompt.
        ignore_eos: keep going past the end-of-sequence token (benchmarks).
        presence_penalty: OpenAI's: subtracted once from a token already generated.
        frequency_penalty: OpenAI's: subtracted per time a token was generated.
        repetition_penalty: Hugging Face's: a logit of a token in the prompt or output is
            divided by it (multiplied when negative); 1 is off.
        logprobs: report each token's log-probability and this many most likely
            alternatives; None reports none.
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    ignore_eos: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logprobs: int | None = None

    @property
    def penalized(self) -> bool:
        """Whether any penalty changes the logits."""
        return bool(self.presence_penalty or self.frequency_penalty
                    or self.repetition_penalty != 1.0)  # fmt: skip

    def checked(self, max_tokens_limit: int) -> SamplingParams:
        """Return self after checking every field against its range.

        Raises:
            InvalidInput: naming the field, the range expected and the value that came.
        """
        _range("max_tokens", self.max_tokens, 1, max_tokens_limit, integer=True)
        _range("temperature", self.temperature, 0.0, 2.0)
        if not 0.0 < self.top_p <= 1.0 or isinstance(self.top_p, bool):
            raise InvalidInput("top_p", "a number in (0, 1]", repr(self.top_p))
        _range("top_k", self.top_k, 0, 1 << 20, integer=True)
        _range("n", self.n, 1, MAX_N, integer=True)
        if self.seed is not None:
            _range("seed", self.seed, 0, (1 << 63) - 1, integer=True)
        _range("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        if not 0.0 < self.repetition_penalty <= 2.0 or isinstance(self.repetition_penalty, bool):
            raise InvalidInput("repetition_penalty", "a number in (0, 2]",
                               repr(self.repetition_penalty))  # fmt: skip
        if self.logprobs is not None:
            _range("logprobs", self.logprobs, 0, MAX_LOGPROBS, integer=True)
        if len(self.stop) > MAX_STOP_STRINGS or any(not s for s in self.stop):
            raise InvalidInput(
                "stop", f"at most {MAX_STOP_STRINGS} non-empty strings", repr(list(self.stop))
            )
        return self


def _range(field: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise InvalidInput(field, f"{what} in [{low}, {high}]", repr(value))


def new_generator(torch: Any, seed: int | None) -> Any:
    """A CPU generator seeded with ``seed`` (or from the OS when None)."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def pick(
    torch: Any, logits: Any, params: SamplingParams, generator: Any,
    penalties: Penalties | None = None,
) -> int:  # fmt: skip
    """Choose the next token from one row of logits (a 1-D float tensor).

    Greedy when ``temperature`` is 0, so it matches ``model.generate(do_sample=False)``
    (with ``repetition_penalty`` too).
    """
    if penalties is not None:
        logits = penalties.apply(logits)
    if params.temperature == 0.0:
        return int(torch.argmax(logits).item())
    scores = logits.float() / params.temperature
    if 0 < params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        ordered, index = torch.sort(scores, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        # Drop a token once the ones before it already reach top_p; the first always stays.
        drop = cumulative - torch.softmax(ordered, dim=-1) >= params.top_p
        scores = scores.index_put((index[drop],), torch.tensor(float("-inf")))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator).item())


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """A generated token's log-probability and the most likely alternatives at its place.

    Attributes:
        token: the token id chosen.
        logprob: its natural log-probability under the model.
        top: (token id, log-probability) of the most likely tokens, most likely first.
    """

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprob(torch: Any, logprobs: Any, token: int, top: int) -> TokenLogprob:
    """The entry for ``token`` from a row of log-probabilities (``log_softmax`` of logits)."""
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        values, index = torch.topk(logprobs, min(top, logprobs.shape[-1]))
        best = tuple(zip(index.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(logprobs[token]), best)
