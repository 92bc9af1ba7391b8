"""Incremental detokenization with stop strings: the text a stream may show so far.

Decoding token by token breaks multi-byte characters and merges (byte-level BPE), so the whole
output is decoded again after each token and only the new tail is shown. Text that could still
turn into a stop string is held back until it cannot, so a client never sees part of a stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]
REPLACEMENT = "\ufffd"  # what a decoder shows for an incomplete UTF-8 sequence


class TextStream:
    """The visible text of one sequence.

    Args:
        decode: token ids -> text (special tokens skipped).
        stop: strings that end the output; the output stops before the first one.
    """

    def __init__(self, decode: Decode, stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = tuple(stop)
        self.ids: list[int] = []
        self.shown = ""  # text already handed out
        self.stopped = False  # a stop string was found

    def push(self, token: int) -> str:
        """Add a token; return the text that became safe to show (maybe empty)."""
        self.ids.append(token)
        text = self._decode(self.ids)
        if self._stop:
            cut = _first_stop(text, self._stop, max(0, len(self.shown) - _longest(self._stop)))
            if cut is not None:
                self.stopped = True
                return self._show(text[:cut])
        if text.endswith(REPLACEMENT):
            return ""  # wait for the rest of the character
        return self._show(text[: len(text) - _held(text, self._stop)])

    def flush(self) -> str:
        """The held-back text, at the end of a sequence that did not stop on a string."""
        if self.stopped:
            return ""
        return self._show(self._decode(self.ids))

    def _show(self, text: str) -> str:
        if len(text) <= len(self.shown):
            return ""
        delta = text[len(self.shown) :]
        self.shown = text
        return delta


def _longest(stop: Sequence[str]) -> int:
    return max(len(s) for s in stop)


def _first_stop(text: str, stop: Sequence[str], start: int) -> int | None:
    found = [i for s in stop if (i := text.find(s, start)) >= 0]
    return min(found) if found else None


def _held(text: str, stop: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that begins some stop string."""
    best = 0
    for s in stop:
        for size in range(min(len(s) - 1, len(text)), best, -1):
            if s.startswith(text[-size:]):
                best = size
                break
    return best
