"""The queue and batch policy of one batcher, derived from a model's config."""

from __future__ import annotations

from dataclasses import dataclass

from inferd.config import ModelConfig
from inferd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batcher dispatches and how much it lets wait.

    Attributes:
        max_batch_size: most rows in one runtime call; 1 runs each request alone.
        max_queue_delay_s: how long the oldest request may wait for a fuller batch; 0 means
            dispatch as soon as an instance is free.
        preferred_batch_sizes: row counts to cut batches at when the queue allows it.
        max_queue_size: waiting requests before ``QueueFull``.
        queue_timeout_s: longest time in the queue before ``RequestTimeout``, or None.
        instances: runtime calls that may run at once when the batcher starts.
        max_instances: the most it may grow to (``Batcher.add_instance``); at least
            ``instances``, which it defaults to.
        default_priority: priority of requests that name none; 1 is the most urgent.
    """

    max_batch_size: int = 32
    max_queue_delay_s: float = 0.0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    queue_timeout_s: float | None = None
    instances: int = 1
    default_priority: int = 5
    max_instances: int = 0

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError("batch policy", "max_batch_size", "must be >= 1")
        if self.instances < 1:
            raise ConfigError("batch policy", "instances", "must be >= 1")
        if self.max_instances == 0:
            object.__setattr__(self, "max_instances", self.instances)  # frozen: default here
        if self.max_instances < self.instances:
            raise ConfigError(
                "batch policy",
                "instances.max",
                f"must be >= instances.min ({self.instances}), got {self.max_instances}",
            )
        too_big = [s for s in self.preferred_batch_sizes if s > self.max_batch_size]
        if too_big:
            raise ConfigError(
                "batch policy",
                "batching.preferred_batch_sizes",
                f"sizes {too_big} exceed max_batch_size {self.max_batch_size}",
            )

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1

    @property
    def target_rows(self) -> int:
        """Rows at which a waiting batch is dispatched without waiting out the delay."""
        if self.preferred_batch_sizes:
            return self.preferred_batch_sizes[-1]
        return self.max_batch_size

    def cut(self, available_rows: int) -> int:
        """How many rows to put in the next batch when ``available_rows`` are queued."""
        limit = min(available_rows, self.max_batch_size)
        fitting = [s for s in self.preferred_batch_sizes if s <= limit]
        return fitting[-1] if fitting else limit

    @classmethod
    def from_config(cls, config: ModelConfig) -> BatchPolicy:
        """Build the policy of a model; ``max_batch_size`` 0 or 1 turns batching off."""
        b = config.batching
        max_batch = max(config.max_batch_size, 1)
        try:
            return cls(
                max_batch_size=max_batch,
                max_queue_delay_s=b.max_queue_delay_ms / 1000.0 if max_batch > 1 else 0.0,
                preferred_batch_sizes=tuple(b.preferred_batch_sizes) if max_batch > 1 else (),
                max_queue_size=b.max_queue_size,
                queue_timeout_s=None if b.queue_timeout_ms is None else b.queue_timeout_ms / 1000,
                instances=config.instances.min,
                max_instances=config.instances.max,
                default_priority=b.default_priority_level,
            )
        except ConfigError as err:
            raise ConfigError(f"model.yaml of '{config.name}'", err.field, str(err)) from err
