"""What the vLLM backend translates, as pure functions (no vLLM import, tested without it).

- :func:`sampling_kwargs`: inferd's checked :class:`SamplingParams` -> keyword arguments of
  ``vllm.SamplingParams`` (one choice each: inferd's routes run ``n`` choices as ``n``
  requests, each seeded ``seed + i``, the same on both backends).
- :class:`OutputStream`: vLLM's ``RequestOutput`` of one request, in ``DELTA`` mode (each
  carries only what is new) -> inferd's stream :class:`Event` s, one per output.

vLLM's ``finish_reason`` is ``stop`` (end-of-sequence token or a stop string), ``length`` or
``abort``; inferd's ``cancelled`` stands for ``abort``. vLLM reports log-probabilities as a
dict per token, token id -> an object with ``logprob`` and ``rank`` (1 the most likely), the
sampled token always among them; by default they are the model's own (``raw_logprobs``), as
inferd's engine reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferd.generative.sampling import SamplingParams, TokenLogprob
from inferd.generative.sequence import Event

FINISH = {"stop": "stop", "length": "length", "abort": "cancelled"}


def sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` (without ``output_kind``, an enum the
    caller adds) that sample as ``params`` asks."""
    return {
        "n": 1,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,  # -1: all tokens, in every version
        "stop": list(params.stop),
        "seed": params.seed,
        "ignore_eos": params.ignore_eos,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "repetition_penalty": params.repetition_penalty,
        "logprobs": params.logprobs,
        "skip_special_tokens": True,
    }


@dataclass
class OutputStream:
    """Turns one request's delta outputs into events.

    Args:
        top: alternatives per token asked for (``SamplingParams.logprobs``); None for none.
    """

    top: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: str | None = None

    def event(self, output: Any) -> Event:
        """The event for one ``RequestOutput`` (delta): its new text, its last token, the
        log-probabilities of its tokens and, on the last, why it ended."""
        if output.prompt_token_ids is not None:
            self.prompt_tokens = len(output.prompt_token_ids)
        choice = output.outputs[0]
        tokens = list(choice.token_ids)
        self.completion_tokens += len(tokens)
        logprobs: tuple[TokenLogprob, ...] = ()
        if self.top is not None and choice.logprobs:
            logprobs = tuple(
                _entry(token, found, self.top)
                for token, found in zip(tokens, choice.logprobs[-len(tokens) :], strict=True)
            )
        finish = None
        if output.finished:
            finish = FINISH.get(choice.finish_reason or "", "stop")
            self.finish = finish
        return Event(choice.text, tokens[-1] if tokens and not finish else None, finish,
                     self.prompt_tokens, self.completion_tokens, "", logprobs)  # fmt: skip

    def failed(self, error: str) -> Event:
        """The last event of a request vLLM failed."""
        self.finish = "error"
        return Event("", None, "error", self.prompt_tokens, self.completion_tokens, error)

    def cancelled(self) -> Event:
        """The last event of a request cancelled before vLLM said it ended."""
        self.finish = "cancelled"
        return Event("", None, "cancelled", self.prompt_tokens, self.completion_tokens)


def _entry(token: int, found: dict[int, Any], top: int) -> TokenLogprob:
    best = sorted((item.rank, tid, item.logprob) for tid, item in found.items()
                  if item.rank is not None and item.rank <= top)  # fmt: skip
    return TokenLogprob(token, float(found[token].logprob),
                        tuple((tid, float(lp)) for _, tid, lp in best))  # fmt: skip
