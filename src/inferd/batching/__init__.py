"""Dynamic batching: a queue and a batch policy in front of each loaded runtime."""

from inferd.batching.batcher import BACKGROUND_PRIORITY, Batcher, BatchObserver, BatchResult
from inferd.batching.policy import BatchPolicy

__all__ = ["BACKGROUND_PRIORITY", "BatchObserver", "BatchPolicy", "BatchResult", "Batcher"]
