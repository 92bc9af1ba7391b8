"""The running batch's KV cache: every sequence's keys and values, left-padded to one length.

A prompt is prefilled into the sequence's own ``DynamicCache`` (the library's cache object,
batch of one, no padding). When it is done the sequence joins the batch: its tensors are
left-padded (or the batch's are) to a common length and stacked, and an attention mask marks
the padding, the way ``model.generate`` runs a left-padded batch. A leaving sequence's row
is dropped, and columns that only padding occupies are trimmed. Joining and leaving copy the
cache once; a decode step appends one column, with one forward pass over the whole batch.

Why not one cache object per sequence at decode time: the model's forward takes one cache
for the batch, so per-sequence caches would be stacked and split on every step, a copy of
the whole cache per token instead of per join or leave.
"""

from __future__ import annotations

from typing import Any

from inferd.generative.sequence import Sequence


class BatchCache:
    """Keys, values and mask of the running sequences, one row each, in ``rows`` order.

    Args:
        torch: the torch module.
        cache_class: the library's ``DynamicCache``.
    """

    def __init__(self, torch: Any, cache_class: Any) -> None:
        self._torch = torch
        self._cache_class = cache_class
        self.rows: list[Sequence] = []
        self.layers: list[tuple[Any, Any]] = []  # (keys, values): [rows, heads, length, dim]
        self.mask: Any = None  # [rows, length], 1 for a real token

    def join(self, sequence: Sequence, cache: Any) -> None:
        """Add a sequence whose prompt is in ``cache`` (its own, batch of one)."""
        torch = self._torch
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        mask = torch.ones((1, layers[0][0].shape[2]), dtype=torch.long, device=layers[0][0].device)
        if not self.rows:
            self.rows, self.layers, self.mask = [sequence], layers, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.layers = [
            (torch.cat([_pad(torch, k0, width), _pad(torch, k1, width)]),
             torch.cat([_pad(torch, v0, width), _pad(torch, v1, width)]))
            for (k0, v0), (k1, v1) in zip(self.layers, layers, strict=True)
        ]  # fmt: skip
        self.mask = torch.cat([_pad_mask(torch, self.mask, width), _pad_mask(torch, mask, width)])
        self.rows.append(sequence)

    def leave(self, gone: set[Sequence]) -> None:
        """Drop the rows of ``gone``; trim columns no remaining row uses."""
        keep = [i for i, seq in enumerate(self.rows) if seq not in gone]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.layers, self.mask = [], None
            return
        index = self._torch.tensor(keep, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int((mask.sum(dim=0) > 0).nonzero()[0].item())
        self.mask = mask[:, start:]
        self.layers = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in self.layers
        ]

    @property
    def bytes(self) -> int:
        """Memory the batch's keys and values hold, padding included."""
        return sum(t.numel() * t.element_size() for pair in self.layers for t in pair)

    def step(self) -> tuple[Any, Any]:
        """The cache object and attention mask for one decode step (one new token per row)."""
        torch = self._torch
        cache = self._cache_class(ddp_cache_data=self.layers)
        ones = torch.ones((len(self.rows), 1), dtype=torch.long, device=self.mask.device)
        return cache, torch.cat([self.mask, ones], dim=1)

    def absorb(self, cache: Any, mask: Any) -> None:
        """Keep the cache and mask the decode step grew."""
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]
        self.mask = mask


def _pad(torch: Any, tensor: Any, width: int) -> Any:
    """Left-pad [rows, heads, length, dim] with zeros to ``width`` along length."""
    missing = width - tensor.shape[2]
    if missing == 0:
        return tensor
    shape = (tensor.shape[0], tensor.shape[1], missing, tensor.shape[3])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)


def _pad_mask(torch: Any, mask: Any, width: int) -> Any:
    missing = width - mask.shape[1]
    if missing == 0:
        return mask
    return torch.cat([mask.new_zeros((mask.shape[0], missing)), mask], dim=1)
