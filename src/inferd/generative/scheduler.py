"""Iteration-level scheduling: which sequences decode and which prompts prefill, per step.

Every step decodes one token for each running sequence, then spends what is left of the
step's token budget on prompts, in arrival order, a chunk at a time. A long prompt is thus
prefilled over several steps while the running streams keep getting a token each step;
a new sequence joins the running batch when its prompt is done, a finished one leaves at once.

Pure bookkeeping: no torch here, so the policy is tested on its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from inferd.generative.sequence import Sequence


@dataclass(slots=True)
class Plan:
    """One step's work."""

    decode: list[Sequence] = field(default_factory=list)
    prefill: list[tuple[Sequence, int]] = field(default_factory=list)  # (sequence, tokens)
    dropped: list[Sequence] = field(default_factory=list)  # cancelled since the last step

    @property
    def empty(self) -> bool:
        return not (self.decode or self.prefill or self.dropped)


class Scheduler:
    """Queues of waiting, prefilling and running sequences.

    Args:
        max_running: most sequences holding a KV cache (prefilling or running) at once.
        token_budget: most tokens one step feeds the model (decode tokens count one each).
        min_prefill: a prompt chunk is at least this long even when decoding used the budget,
            so waiting prompts always make progress.
    """

    def __init__(self, max_running: int = 16, token_budget: int = 256, min_prefill: int = 16):
        self.max_running = max_running
        self.token_budget = token_budget
        self.min_prefill = min_prefill
        self.waiting: deque[Sequence] = deque()
        self.prefilling: list[Sequence] = []
        self.running: list[Sequence] = []

    def add(self, sequence: Sequence) -> None:
        self.waiting.append(sequence)

    def promote(self, sequence: Sequence) -> None:
        """A prefilled sequence joins the running batch."""
        self.prefilling.remove(sequence)
        self.running.append(sequence)

    def remove(self, sequence: Sequence) -> None:
        """A sequence leaves, wherever it is."""
        for group in (self.running, self.prefilling):
            if sequence in group:
                group.remove(sequence)
                return
        if sequence in self.waiting:
            self.waiting.remove(sequence)

    def plan(self) -> Plan:
        """The next step's work; cancelled sequences are taken out and listed as dropped."""
        plan = Plan()
        for group in (self.running, self.prefilling, self.waiting):
            for seq in [s for s in group if s.cancelled]:
                group.remove(seq)
                plan.dropped.append(seq)
        plan.decode = list(self.running)
        while self.waiting and len(self.running) + len(self.prefilling) < self.max_running:
            self.prefilling.append(self.waiting.popleft())
        left = self.token_budget - len(plan.decode)
        for i, seq in enumerate(self.prefilling):
            remaining = len(seq.prompt) - seq.prefilled
            chunk = min(remaining, max(left, self.min_prefill if i == 0 else 0))
            if chunk <= 0:
                break
            plan.prefill.append((seq, chunk))
            left -= chunk
        return plan

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.prefilling or self.running)
