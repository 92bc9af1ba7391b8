"""Repetition penalties of one sequence: OpenAI's presence and frequency penalties, and
Hugging Face's repetition penalty.

- ``presence_penalty`` and ``frequency_penalty`` (OpenAI): ``logit[j] -= c[j] * frequency +
  (c[j] > 0) * presence``, where ``c[j]`` counts token ``j`` in the output so far (as OpenAI
  describes them and vLLM applies them: the prompt does not count).
- ``repetition_penalty`` (Hugging Face's ``RepetitionPenaltyLogitsProcessor``): a token in the
  prompt or the output has its logit divided by the penalty when positive, multiplied when
  negative.

The counts are kept per sequence on the logits' device and grow by one token per step, so a
step costs one small update per row, not a recount of the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Penalties:
    """What one sequence has seen, and its penalties applied to a row of logits.

    Args:
        torch: the torch module.
        prompt: the prompt's token ids.
        presence: OpenAI ``presence_penalty``.
        frequency: OpenAI ``frequency_penalty``.
        repetition: Hugging Face ``repetition_penalty`` (1 is off).
    """

    def __init__(self, torch: Any, prompt: Sequence[int], presence: float = 0.0,
                 frequency: float = 0.0, repetition: float = 1.0) -> None:  # fmt: skip
        self._torch = torch
        self._prompt = list(prompt)
        self._output: list[int] = []
        self.presence = presence
        self.frequency = frequency
        self.repetition = repetition
        self._counts: Any = None  # output token counts, made at the first row (its size)
        self._seen: Any = None  # prompt or output

    def add(self, token: int) -> None:
        """Count a generated token."""
        self._output.append(token)
        if self._counts is not None and token < self._counts.shape[0]:
            self._counts[token] += 1
            self._seen[token] = True

    def apply(self, logits: Any) -> Any:
        """A penalised copy of one row of logits (1-D)."""
        torch = self._torch
        if self._counts is None:
            self._start(logits.shape[-1], logits.device)
        scores = logits.float().clone()
        if self.repetition != 1.0:
            picked = scores[self._seen]
            scores[self._seen] = torch.where(
                picked > 0, picked / self.repetition, picked * self.repetition
            )
        if self.frequency or self.presence:
            scores -= self._counts * self.frequency + (self._counts > 0).float() * self.presence
        return scores

    def _start(self, vocab: int, device: Any) -> None:
        torch = self._torch
        self._counts = torch.zeros(vocab, dtype=torch.float32, device=device)
        self._seen = torch.zeros(vocab, dtype=torch.bool, device=device)
        output = [t for t in self._output if t < vocab]
        if output:
            ids = torch.tensor(output, device=device)
            self._counts.index_add_(0, ids, torch.ones(len(output), device=device))
        seen = [t for t in self._prompt if t < vocab] + output
        if seen:
            self._seen[torch.tensor(seen, device=device)] = True
