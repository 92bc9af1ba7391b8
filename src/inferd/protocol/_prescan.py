"""A bounded pre-scan of a large JSON body: where its tensor arrays are, before parsing them.

orjson parses a whole document or nothing, and a 60 MB ``data`` array becomes tens of millions
of Python objects (about 1 GB, seconds of CPU) before any check on it can run. For a large body
the codecs first lex it here with numpy, one chunk at a time: strings (and their escapes) are
told apart from structure, and every array that is the value of a key, holds no object and
opens at most ``depth`` levels deep is cut out with its comma count. The rest (the skeleton:
names, shapes, datatypes, parameters) is parsed with each cut array replaced by a :class:`Cut`,
so declared shapes and limits are checked before any tensor data is parsed, and an array whose
element count contradicts its shape is refused from its comma count alone.

For valid JSON the lexer tracks strings exactly as a parser does, so the skeleton plus the cut
arrays mean what the whole body means; for invalid JSON the skeleton or a cut array fails to
parse and the body is refused. Each numpy call covers one chunk, so a scan run in a worker
thread hands the GIL back to the event loop between chunks.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from inferd.errors import InvalidInput
from inferd.protocol._tensors import load_json_object

PRESCAN_BYTES = 1 << 20  # bodies from this size on are pre-scanned
CHUNK_BYTES = 1 << 20
CUT_BYTES = 1 << 16  # smaller arrays stay in the skeleton
MAX_TOKENS = 1 << 16  # objects, arrays and keys outside tensor data
MAX_SKELETON_BYTES = 4 << 20  # JSON outside the cut arrays
MAX_STRAY_BYTES = 1 << 20  # a cut array where no tensor data belongs is parsed up to this
PIECE_BYTES = 1 << 18  # a large numeric array is parsed this much at a time

_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LSQ, _RSQ, _LCURLY, _RCURLY = 91, 93, 123, 125

# Where a cut array may stay a Cut: the path of keys and list indexes down to it.
Path = tuple[str | int, ...]
TensorPath = Callable[[Path], bool]


@dataclass(frozen=True, slots=True)
class Cut:
    """A tensor array cut out of a body, not parsed yet.

    Attributes:
        body: the whole body.
        start: offset of the array's ``[``.
        end: offset just after its ``]``.
        commas: commas inside it (outside strings), at any depth.
    """

    body: memoryview
    start: int
    end: int
    commas: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def values(self) -> int:
        """The values in the array when it is rectangular with no empty sub-array: in any
        nesting, each comma separates two values or two sub-arrays, so this is commas + 1."""
        return self.commas + 1

    def load(self, field: str) -> Any:
        """Parse the array. Raises InvalidInput naming ``field`` for invalid JSON."""
        try:
            return orjson.loads(self.body[self.start : self.end])
        except orjson.JSONDecodeError as err:
            raise InvalidInput(field, "a JSON array", f"invalid JSON ({err})") from None

    def parse_numbers(self) -> np.ndarray | None:
        """``np.array`` of the array, parsed a piece of top-level values at a time.

        A whole 60 MB array parsed at once holds the GIL for a second or more (orjson, then
        numpy); pieces of PIECE_BYTES each hold it for milliseconds, so the event loop keeps
        running beside a worker thread doing this.

        Returns:
            What ``np.array(orjson.loads(array))`` returns, or None when the pieces cannot
            tell (strings, invalid JSON, ragged or mixed pieces): then use :meth:`load`.
        """
        inner = self.body[self.start + 1 : self.end - 1]
        splits = _top_level_splits(inner)
        if splits is None:
            return None
        arrays: list[np.ndarray] = []
        for begin, end in itertools.pairwise([-1, *splits, len(inner)]):
            try:
                arrays.append(np.array(orjson.loads(b"[%s]" % inner[begin + 1 : end])))
            except (orjson.JSONDecodeError, ValueError, TypeError):
                return None
            time.sleep(0)  # hand the GIL to the event loop between pieces
        first = arrays[0]
        for array in arrays:
            if array.dtype != first.dtype or array.shape[1:] != first.shape[1:]:
                return None  # numpy would promote or refuse the whole: let it
        if first.dtype.kind not in "biuf":
            return None
        return np.concatenate(arrays) if len(arrays) > 1 else first


def load_scanned(body: bytes | memoryview, depth: int, tensor_path: TensorPath) -> dict[str, Any]:
    """Parse a JSON object with its large tensor arrays left as :class:`Cut` values.

    Args:
        body: the JSON text.
        depth: how deep the tensor arrays open (4 for V2's ``inputs[i].data``).
        tensor_path: whether a path is where tensor data belongs; a large array elsewhere is
            parsed when it is at most MAX_STRAY_BYTES and refused when larger.

    Raises:
        InvalidInput: invalid JSON, or a structure past the bounds above.
    """
    view = memoryview(body).cast("B")
    tokens = _Lexer(depth).run(view)
    cuts = _cuts(view, tokens)
    nonce = os.urandom(8).hex()
    pieces: list[bytes | memoryview] = []
    last = 0
    for index, cut in enumerate(cuts):
        pieces.append(view[last : cut.start])
        pieces.append(b'"\\u0000cut:%s:%d"' % (nonce.encode(), index))
        last = cut.end
    pieces.append(view[last:])
    skeleton = b"".join(pieces)
    if len(skeleton) > MAX_SKELETON_BYTES:
        raise InvalidInput(
            "body", f"at most {MAX_SKELETON_BYTES} bytes of JSON outside tensor data arrays",
            f"{len(skeleton)} bytes",
        )  # fmt: skip
    doc = load_json_object(skeleton)
    _restore(doc, f"\x00cut:{nonce}:", cuts, tensor_path)
    return doc


@dataclass(slots=True)
class _Tokens:
    """Structural bytes outside strings that sit no deeper than the lexer's depth."""

    pos: list[int]
    kind: list[int]
    commas: list[int]  # commas (any depth) before the token
    objects: list[int]  # '{' (any depth) before the token


class _Lexer:
    """Chunked numpy lexer; the state carried between chunks is a few integers."""

    def __init__(self, depth: int) -> None:
        self.depth_limit = depth
        self.in_string = 0
        self.backslashes = 0  # length of the backslash run the previous chunk ended with
        self.depth = 0
        self.commas = 0
        self.objects = 0
        self.out = _Tokens([], [], [], [])

    def run(self, view: memoryview) -> _Tokens:
        for offset in range(0, len(view), CHUNK_BYTES):
            self._chunk(np.frombuffer(view[offset : offset + CHUNK_BYTES], np.uint8), offset)
            # Hand the GIL to the event loop now rather than after the 5 ms switch interval:
            # each of a request's steps on the loop would otherwise wait that long.
            time.sleep(0)
        return self.out

    def _chunk(self, c: np.ndarray, offset: int) -> None:
        outside = self._outside(c)
        commas = np.flatnonzero(outside & (c == _COMMA))
        objects = np.flatnonzero(outside & (c == _LCURLY))
        structural = (c == _LSQ) | (c == _RSQ) | (c == _LCURLY) | (c == _RCURLY) | (c == _COLON)
        where = np.flatnonzero(outside & structural)
        kind = c[where]
        closer = (kind == _RSQ) | (kind == _RCURLY)
        opener = (kind == _LSQ) | (kind == _LCURLY)
        after = self.depth + np.cumsum(opener.astype(np.int64) - closer)
        level = after + closer  # a closer sits at the depth it leaves
        keep = level <= self.depth_limit
        kept = where[keep]
        out = self.out
        if len(out.pos) + kept.size > MAX_TOKENS:
            raise InvalidInput(
                "body", f"at most {MAX_TOKENS} JSON objects, arrays and keys outside tensor data",
                "more",
            )  # fmt: skip
        out.pos.extend((kept + offset).tolist())
        out.kind.extend(kind[keep].tolist())
        out.commas.extend((np.searchsorted(commas, kept) + self.commas).tolist())
        out.objects.extend((np.searchsorted(objects, kept) + self.objects).tolist())
        if after.size:
            self.depth = int(after[-1])
        self.commas += commas.size
        self.objects += objects.size

    def _outside(self, c: np.ndarray) -> np.ndarray:
        """Which bytes of the chunk are outside strings (quotes count as inside)."""
        quotes = np.flatnonzero(c == _QUOTE)
        if quotes.size:
            quotes = self._unescaped(c, quotes)
        self._carry_backslashes(c)
        if not quotes.size:
            return np.full(c.size, not self.in_string)
        toggles = np.zeros(c.size, np.uint8)
        toggles[quotes] = 1
        inside = np.bitwise_xor.accumulate(toggles) ^ np.uint8(self.in_string)
        self.in_string = int(inside[-1])
        inside[quotes] = 1
        outside: np.ndarray = inside == 0
        return outside

    def _unescaped(self, c: np.ndarray, quotes: np.ndarray) -> np.ndarray:
        """The quotes not escaped by an odd run of backslashes before them."""
        before = c[np.maximum(quotes - 1, 0)] == _BACKSLASH
        before[quotes == 0] = self.backslashes > 0
        if not before.any():
            return quotes
        plain = np.flatnonzero(c != _BACKSLASH)
        last = np.searchsorted(plain, quotes) - 1  # the last non-backslash before each quote
        start = np.where(last >= 0, plain[np.maximum(last, 0)], -1)
        run = quotes - start - 1 + np.where(last >= 0, 0, self.backslashes)
        unescaped: np.ndarray = quotes[run % 2 == 0]
        return unescaped

    def _carry_backslashes(self, c: np.ndarray) -> None:
        if c.size == 0 or c[-1] != _BACKSLASH:
            self.backslashes = 0
            return
        plain = np.flatnonzero(c != _BACKSLASH)
        self.backslashes = c.size - 1 - int(plain[-1]) if plain.size else self.backslashes + c.size


def _top_level_splits(inner: memoryview) -> list[int] | None:
    """Offsets of commas between top-level values, about PIECE_BYTES apart; None when the
    array holds strings (whose brackets and commas would need the full lexer)."""
    splits: list[int] = []
    depth = 0
    bucket = -1  # the PIECE_BYTES bucket of the last split
    for offset in range(0, len(inner), CHUNK_BYTES):
        c = np.frombuffer(inner[offset : offset + CHUNK_BYTES], np.uint8)
        if (c == _QUOTE).any():
            return None
        opens, closes = c == _LSQ, c == _RSQ
        if opens.any() or closes.any():
            level = depth + np.cumsum(opens.astype(np.int32) - closes)
            commas = np.flatnonzero((c == _COMMA) & (level == 0))
            depth = int(level[-1])
        else:  # a flat stretch: every comma or none is top-level
            commas = np.flatnonzero(c == _COMMA) if depth == 0 else np.empty(0, np.intp)
        buckets = (commas + offset) // PIECE_BYTES
        first = np.flatnonzero(np.diff(buckets, prepend=bucket))  # first comma of a bucket
        if first.size:
            splits.extend((commas[first] + offset).tolist())
            bucket = int(buckets[-1])
        time.sleep(0)
    return splits


def _cuts(view: memoryview, tokens: _Tokens) -> list[Cut]:
    """Pair brackets; cut arrays that are values of keys, hold no object and are large."""
    cuts: list[Cut] = []
    stack: list[tuple[int, bool]] = []  # (token index, is a keyed array)
    pos, kind, commas, objects = tokens.pos, tokens.kind, tokens.commas, tokens.objects
    for i, k in enumerate(kind):
        if k in (_LSQ, _LCURLY):
            keyed = k == _LSQ and i > 0 and kind[i - 1] == _COLON and commas[i - 1] == commas[i]
            stack.append((i, keyed))
        elif k in (_RSQ, _RCURLY):
            if not stack or (kind[stack[-1][0]] == _LSQ) != (k == _RSQ):
                raise InvalidInput("body", "a JSON object", f"an unmatched bracket at {pos[i]}")
            j, keyed = stack.pop()
            size = pos[i] + 1 - pos[j]
            if keyed and objects[i] == objects[j] and size >= CUT_BYTES:
                cuts.append(Cut(view, pos[j], pos[i] + 1, commas[i] - commas[j]))
    return cuts


def _restore(doc: dict[str, Any], prefix: str, cuts: list[Cut], tensor_path: TensorPath) -> None:
    """Put each Cut where its placeholder is (iteratively: skeletons may nest deeply)."""
    todo: list[tuple[Any, Path]] = [(doc, ())]
    while todo:
        node, path = todo.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            where = (*path, key)
            if isinstance(value, dict | list):
                todo.append((value, where))
            elif isinstance(value, str) and value.startswith(prefix):
                node[key] = _placed(cuts[int(value[len(prefix) :])], where, tensor_path)


def _placed(cut: Cut, where: Path, tensor_path: TensorPath) -> Any:
    if tensor_path(where):
        return cut
    field = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where).lstrip(".")
    if cut.nbytes > MAX_STRAY_BYTES:
        raise InvalidInput(
            field, f"at most {MAX_STRAY_BYTES} bytes of JSON here (tensor data belongs in "
            "the inputs)", f"{cut.nbytes} bytes",
        )  # fmt: skip
    return cut.load(field)
