"""Log-probabilities in OpenAI's two shapes.

Completions (``logprobs: k``)::

    {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}],
     "text_offset": [...]}

``top_logprobs`` holds the chosen token and the ``k`` most likely, as OpenAI's legacy API and
vLLM answer. Chat (``logprobs: true, top_logprobs: k``)::

    {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}],
     "refusal": null}

A token's text is its own decoding (a piece of a multi-byte character shows as U+FFFD);
``bytes`` are that text's UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from inferd.generative.sampling import TokenLogprob

TokenText = Callable[[Sequence[int]], list[str]]


class Logprobs:
    """Renders the entries of one choice, a piece at a time (streams) or whole.

    Args:
        token_text: token ids -> each token's text (the engine's ``token_text``).
        chat: the chat shape, else the completions shape.
    """

    def __init__(self, token_text: TokenText, chat: bool) -> None:
        self._token_text = token_text
        self._chat = chat
        self.offset = 0  # characters of the tokens rendered so far (completions' text_offset)

    def render(self, entries: Sequence[TokenLogprob]) -> dict[str, Any]:
        ids = [e.token for e in entries]
        alternatives = [t for e in entries for t, _ in e.top]
        texts = self._token_text(ids + alternatives)
        names = dict(zip(ids + alternatives, texts, strict=True))
        if self._chat:
            return {"content": [_chat_entry(e, names) for e in entries], "refusal": None}
        offsets = []
        for text in texts[: len(ids)]:
            offsets.append(self.offset)
            self.offset += len(text)
        return {
            "tokens": texts[: len(ids)],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [
                {names[e.token]: e.logprob, **{names[t]: lp for t, lp in e.top}} for e in entries
            ],
            "text_offset": offsets,
        }


def _chat_entry(entry: TokenLogprob, names: dict[int, str]) -> dict[str, Any]:
    return {
        **_chat_token(names[entry.token], entry.logprob),
        "top_logprobs": [_chat_token(names[t], lp) for t, lp in entry.top],
    }


def _chat_token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}
