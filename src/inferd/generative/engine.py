"""The generation engine: continuous batching of a causal LM on its own thread.

    Engine
    ├── Scheduler   which sequences decode, which prompts prefill (token budget per step)
    ├── BatchCache  the running batch's KV cache, left-padded, with its attention mask
    └── Sequence    per request: prompt, sampling, text stream, sink for its events

``submit`` and ``cancel`` are thread-safe and never block; the model only runs on the engine
thread, so the event loop never waits on it. Each step: drop cancelled sequences, one decode
forward pass over the running batch, then prompt chunks within the step's token budget; a
prompt that is done joins the batch before the next step.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Sequence as Seq
from typing import Any, Protocol

from inferd.generative.kv import BatchCache
from inferd.generative.penalties import Penalties
from inferd.generative.sampling import (
    SamplingParams,
    TokenLogprob,
    new_generator,
    pick,
    token_logprob,
)
from inferd.generative.scheduler import Plan, Scheduler
from inferd.generative.sequence import Event, Sequence, Sink
from inferd.generative.text import TextStream

logger = logging.getLogger(__name__)


class Observer(Protocol):
    """Where the engine reports timings and counts (``inferd.generative.metrics``)."""

    def first_token(self, seconds: float) -> None: ...
    def next_token(self, seconds: float) -> None: ...
    def finished(self, prompt_tokens: int, completion_tokens: int, reason: str) -> None: ...
    def queues(self, running: int, waiting: int, cache_bytes: int) -> None: ...


class Handle(Protocol):
    """A submitted sequence as its caller sees it."""

    @property
    def finish(self) -> str | None: ...


class GenerationEngine(Protocol):
    """What the generation routes use of an engine: this module's :class:`Engine` or the
    vLLM backend's (``inferd.runtimes.vllm.VllmEngine``)."""

    tokenizer: Any
    max_context: int
    observer: Observer | None

    def encode(self, text: str) -> list[int]: ...
    def token_text(self, ids: Seq[int]) -> list[str]: ...
    def submit(self, prompt: Seq[int], params: SamplingParams, sink: Sink) -> Any: ...
    def cancel(self, sequence: Any) -> None: ...


class Engine:
    """Continuous batching over one loaded model.

    Args:
        model: a transformers causal LM (eval mode).
        tokenizer: its tokenizer.
        torch: the torch module.
        cache_class: the library's ``DynamicCache``.
        max_running: most sequences in the batch; 1 runs one sequence at a time.
        token_budget: most tokens fed to the model per step.
        max_context: most tokens (prompt and output) per sequence.
    """

    def __init__(
        self, model: Any, tokenizer: Any, torch: Any, cache_class: Any, *, max_running: int = 16,
        token_budget: int = 256, max_context: int = 2048,
    ) -> None:  # fmt: skip
        self.model = model
        self.tokenizer = tokenizer
        self.torch = torch
        self.max_context = max_context
        self.scheduler = Scheduler(max_running, token_budget)
        self.batch = BatchCache(torch, cache_class)
        self._cache_class = cache_class
        self._inbox: list[Sequence] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.observer: Observer | None = None
        self.eos: set[int] = _eos_ids(model, tokenizer)
        # transformers 5.x renames the forward's past_key_values to cache (and warns on the old).
        self._cache_arg = (
            "cache"
            if "cache" in inspect.signature(model.forward).parameters
            else ("past_key_values")
        )
        self.steps = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inferd-generate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; sequences still queued or running end as ``cancelled``."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def submit(self, prompt: Seq[int], params: SamplingParams, sink: Sink) -> Sequence:
        """Queue a prompt (token ids) for generation; events go to ``sink`` on the engine
        thread. Thread-safe. ``params`` must be checked already; ``n`` is the caller's."""
        stream = TextStream(self._decode, params.stop)
        seq = Sequence(list(prompt), params, stream, sink, new_generator(self.torch, params.seed))
        if params.penalized:
            seq.penalties = Penalties(
                self.torch, seq.prompt, params.presence_penalty, params.frequency_penalty,
                params.repetition_penalty,
            )  # fmt: skip
        with self._wake:
            if self._stopping:
                _emit(seq, seq.event("", None, "cancelled"))
                return seq
            self._inbox.append(seq)
            self._wake.notify()
        return seq

    def cancel(self, sequence: Sequence) -> None:
        """Free the sequence's slot at the next step. Thread-safe."""
        sequence.cancelled = True
        with self._wake:
            self._wake.notify()

    def token_text(self, ids: Seq[int]) -> list[str]:
        """Each token's own text (for log-probabilities)."""
        return [self.tokenizer.decode([i]) for i in ids]

    def _decode(self, ids: Seq[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def _run(self) -> None:
        with self.torch.inference_mode():
            while True:
                with self._wake:
                    while not self._inbox and not self._stopping and not self._work_left():
                        self._wake.wait()
                    if self._stopping:
                        break
                self.admit()
                try:
                    self.step()
                except Exception:  # a bug here must not leave every stream hanging silently
                    logger.exception("generation engine step failed; dropping its sequences")
                    for seq in [*self.scheduler.prefilling, *self.scheduler.running]:
                        self._finish(seq, "error", "generation engine failure")
        for seq in [*self._inbox, *self.scheduler.waiting, *self.scheduler.prefilling,
                    *self.scheduler.running]:  # fmt: skip
            self._finish(seq, "cancelled")

    def admit(self) -> None:
        """Hand submitted sequences to the scheduler (engine thread; tests step by hand)."""
        with self._wake:
            for seq in self._inbox:
                self.scheduler.add(seq)
            self._inbox.clear()

    def _work_left(self) -> bool:
        s = self.scheduler
        return bool(s.running or s.prefilling or s.waiting) or any(q.cancelled for q in s.waiting)

    def step(self) -> Plan:
        """Run one iteration (engine thread only; tests call it directly)."""
        plan = self.scheduler.plan()
        for seq in plan.dropped:
            self._finish(seq, "cancelled")
        try:
            if plan.decode:
                self._decode_step(plan.decode)
            for seq, tokens in plan.prefill:
                self._prefill(seq, tokens)
        except Exception as err:  # a failed forward pass ends the sequences in it, not the engine
            logger.exception("generation step failed")
            for seq in [*plan.decode, *(s for s, _ in plan.prefill)]:
                self._finish(seq, "error", f"generation failed: {type(err).__name__}: {err}")
        self.steps += 1
        if self.observer is not None:
            s = self.scheduler
            self.observer.queues(len(s.running), len(s.waiting) + len(s.prefilling),
                                 self.batch.bytes)  # fmt: skip
        return plan

    def _prefill(self, seq: Sequence, tokens: int) -> None:
        torch = self.torch
        if seq.cache is None:
            seq.cache = self._cache_class()
        start, end = seq.prefilled, seq.prefilled + tokens
        ids = torch.tensor([seq.prompt[start:end]], device=self.model.device)
        positions = torch.arange(start, end, device=self.model.device).unsqueeze(0)
        mask = torch.ones((1, end), dtype=torch.long, device=self.model.device)
        out = self._forward(ids, mask, positions, seq.cache)
        seq.prefilled = end
        if end < len(seq.prompt):
            return
        self.scheduler.promote(seq)
        self.batch.join(seq, seq.cache)
        seq.cache = None
        logits = out.logits[0, -1]
        token = pick(torch, logits, seq.params, seq.generator, seq.penalties)
        self._accept(seq, token, _logprob(torch, seq, logits, token))

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs = {self._cache_arg: cache}
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                          use_cache=True, **kwargs)  # fmt: skip

    def _decode_step(self, running: list[Sequence]) -> None:
        torch = self.torch
        rows = self.batch.rows
        ids = torch.tensor([[seq.output[-1]] for seq in rows], device=self.model.device)
        positions = torch.tensor([[seq.length] for seq in rows], device=self.model.device)
        cache, mask = self.batch.step()
        out = self._forward(ids, mask, positions, cache)
        self.batch.absorb(cache, mask)
        logits = out.logits[:, -1]
        greedy = logits.argmax(dim=-1).tolist()  # one call for every greedy row, not one each
        for i, seq in enumerate(rows):
            if seq.params.temperature == 0.0 and seq.penalties is None:
                token = greedy[i]
            else:
                token = pick(torch, logits[i], seq.params, seq.generator, seq.penalties)
            self._accept(seq, token, _logprob(torch, seq, logits[i], token))

    def _accept(self, seq: Sequence, token: int, logprob: TokenLogprob | None = None) -> None:
        """Record a sampled token, hand out its text, end the sequence if it is done."""
        now = time.perf_counter()
        if self.observer is not None:
            if seq.output:
                self.observer.next_token(now - seq.last_token_at)
            else:
                self.observer.first_token(now - seq.submitted)
        seq.last_token_at = now
        if token in self.eos and not seq.params.ignore_eos:
            self._finish(seq, "stop")
            return
        seq.output.append(token)
        if seq.penalties is not None:
            seq.penalties.add(token)
        logprobs = () if logprob is None else (logprob,)
        text = seq.text.push(token)
        if seq.text.stopped:
            self._finish(seq, "stop", text=text, logprobs=logprobs)
        elif len(seq.output) >= seq.params.max_tokens or seq.length + 1 >= self.max_context:
            self._finish(seq, "length", text=text + seq.text.flush(), logprobs=logprobs)
        else:
            _emit(seq, seq.event(text, token, None, logprobs=logprobs))

    def _finish(
        self, seq: Sequence, reason: str, error: str = "", text: str = "",
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:  # fmt: skip
        if seq.finish is not None:
            return
        seq.finish = reason
        self.scheduler.remove(seq)
        self.batch.leave({seq})
        seq.cache = None
        if reason == "stop" and not seq.text.stopped:
            text += seq.text.flush()
        if self.observer is not None:  # before the caller hears of the end: counts are final
            self.observer.finished(len(seq.prompt), len(seq.output), reason)
        _emit(seq, seq.event(text, None, reason, error, logprobs))


def _emit(seq: Sequence, event: Event) -> None:
    """Hand an event to its caller; a caller that cannot take it (its loop closed) is
    cancelled instead of stopping the engine thread."""
    try:
        seq.sink(event)
    except Exception:
        logger.warning("sequence %d: its caller is gone; cancelling it", seq.id, exc_info=True)
        seq.cancelled = True


def _logprob(torch: Any, seq: Sequence, logits: Any, token: int) -> TokenLogprob | None:
    """The token's entry when the sequence asked for log-probabilities (of the model's own
    distribution: before penalties and temperature, as vLLM reports them by default)."""
    if seq.params.logprobs is None:
        return None
    return token_logprob(torch, torch.log_softmax(logits.float(), dim=-1), token,
                         seq.params.logprobs)  # fmt: skip


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    found = model.generation_config.eos_token_id
    if found is None:
        found = tokenizer.eos_token_id
    if found is None:
        return set()
    return set(found) if isinstance(found, list) else {int(found)}
