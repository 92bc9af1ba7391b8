"""Prometheus metrics of token generation, names prefixed ``inferd_generate_``.

Registered on the server's metrics registry, so ``--workers N`` merge at scrape time. Label
``model``. Observed on the engine thread (one histogram observation per token; the engine
runs one model forward pass per step, which costs far more).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inferd.monitoring.metrics import LATENCY_BUCKETS

TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GenerateMetrics:
    """The ``inferd_generate_*`` families.

    Args:
        registry: the server's metrics registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.ttft = Histogram(
            "inferd_generate_time_to_first_token_seconds",
            "Submission of a sequence to its first token (queue and prefill).",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tpot = Histogram(
            "inferd_generate_time_per_output_token_seconds",
            "Time between two tokens of a sequence.", ["model"], buckets=TOKEN_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "inferd_generate_tokens", "Tokens by kind: prompt (prefilled) or completion.",
            ["model", "kind"], registry=r,
        )  # fmt: skip
        self.sequences = Counter(
            "inferd_generate_sequences", "Finished sequences by reason: stop, length, "
            "cancelled (client gone), error.", ["model", "finish"], registry=r,
        )  # fmt: skip
        self.running = Gauge(
            "inferd_generate_running_sequences", "Sequences in the decode batch.",
            ["model"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.waiting = Gauge(
            "inferd_generate_waiting_sequences", "Sequences queued or prefilling their prompt.",
            ["model"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.rate_limited = Counter(
            "inferd_generate_rate_limited", "Generation requests refused 429 by a token budget, "
            "by the budget that refused: key or model.", ["model", "budget"], registry=r,
        )  # fmt: skip
        self.cache = Gauge(
            "inferd_generate_kv_cache_bytes", "Bytes the decode batch's KV cache holds "
            "(keys and values, padding included).", ["model"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip

    def observer(self, model: str) -> ModelObserver:
        """An ``inferd.generative.engine.Observer`` for one model's engine."""
        return ModelObserver(self, model)


class ModelObserver:
    """The families' children for one model."""

    def __init__(self, metrics: GenerateMetrics, model: str) -> None:
        self._ttft = metrics.ttft.labels(model)
        self._tpot = metrics.tpot.labels(model)
        self._prompt = metrics.tokens.labels(model, "prompt")
        self._completion = metrics.tokens.labels(model, "completion")
        self._sequences = metrics.sequences
        self._model = model
        self._running = metrics.running.labels(model)
        self._waiting = metrics.waiting.labels(model)
        self._cache = metrics.cache.labels(model)

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def next_token(self, seconds: float) -> None:
        self._tpot.observe(seconds)

    def finished(self, prompt_tokens: int, completion_tokens: int, reason: str) -> None:
        self._prompt.inc(prompt_tokens)
        self._completion.inc(completion_tokens)
        self._sequences.labels(self._model, reason).inc()

    def queues(self, running: int, waiting: int, cache_bytes: int) -> None:
        self._running.set(running)
        self._waiting.set(waiting)
        self._cache.set(cache_bytes)
