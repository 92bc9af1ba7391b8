"""HTTP/2 wire format (RFC 9113): frame layout, codes, HPACK literals, stream state.

Shared by :mod:`inferd.transport.grpc.http2` (the connection) and the gRPC layer above it.
"""

from __future__ import annotations

import struct
from typing import Any, cast

from hpack import Decoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20

# Error codes (section 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM = 0xB

# Settings identifiers (section 6.5.2).
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

FRAME_HEAD = struct.Struct(">BHBBI")  # 24-bit length as (high byte, low 16 bits), type, flags, id
SETTING = struct.Struct(">HI")
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
DEFAULT_FRAME = 16_384


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: the 9-byte header and the payload."""
    n = len(payload)
    return FRAME_HEAD.pack(n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


def server_preface(max_streams: int, window: int, max_frame: int, max_header_list: int) -> bytes:
    """Our SETTINGS, then the WINDOW_UPDATE that widens the connection window to ``window``
    (it starts at 65,535 whatever SETTINGS say)."""
    settings = b"".join(
        SETTING.pack(ident, value)
        for ident, value in (
            (SETTINGS_ENABLE_PUSH, 0),
            (SETTINGS_MAX_CONCURRENT_STREAMS, max_streams),
            (SETTINGS_INITIAL_WINDOW_SIZE, window),
            (SETTINGS_MAX_FRAME_SIZE, max_frame),
            (SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list),
        )
    )
    grant = (window - DEFAULT_WINDOW).to_bytes(4)
    return frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, grant)


def unpad(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding (when the PADDED flag is set).

    Raises:
        H2Error: the pad length does not fit the frame (PROTOCOL_ERROR).
    """
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise H2Error(PROTOCOL_ERROR, "bad padding")
    return payload[1 : len(payload) - payload[0]]


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name: bytes, value: bytes) -> bytes:
    """A header field as an HPACK literal without indexing (no table entry, no Huffman)."""
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


STATUS_200 = b"\x88"  # ":status: 200", static table index 8


class H2Error(Exception):
    """A connection error: the connection ends with GOAWAY carrying ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Stream:
    """One request/response exchange on a connection.

    Attributes:
        id: the stream identifier.
        remote_closed: the peer has sent END_STREAM.
        local_closed: we have sent END_STREAM (or reset the stream).
        send_delta: the stream's send window minus the peer's initial window (increments
            granted less bytes sent), so that a new initial window applies to every stream
            at once without visiting them.
        app: what the subclass keeps for the stream (the gRPC call).
    """

    __slots__ = (
        "app",
        "id",
        "local_closed",
        "pending",
        "pending_end",
        "recv_unacked",
        "remote_closed",
        "send_delta",
    )  # fmt: skip

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.send_delta = 0
        self.recv_unacked = 0
        self.remote_closed = False
        self.local_closed = False
        self.pending = bytearray()  # DATA payload waiting for flow-control window
        self.pending_end: bytes | None = None  # trailers to send once ``pending`` is out
        self.app: Any = None


# Every byte value that cannot be a whole one-byte "indexed header field" (RFC 7541 6.1).
_NOT_ONE_BYTE_INDEXED = bytes(range(0x80)) + b"\xff"


class HeaderDecoder:
    """HPACK decoding (the ``hpack`` library), with a cache for repeated blocks.

    A block made only of one-byte indexed fields leaves the decoder's table as it is and
    decodes to the same list for as long as the table does not change. A client repeating
    a call sends exactly such a block (every field is in a table after the first call), so
    those are kept; decoding any other block may change the table, so it empties the cache.

    Args:
        max_header_list_size: the largest decoded header list accepted.
    """

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = Decoder()
        self._decoder.max_header_list_size = max_header_list_size
        self._cache: dict[bytes, list[tuple[bytes, bytes]]] = {}

    @property
    def max_header_list_size(self) -> int:
        """The largest decoded header list accepted."""
        return int(self._decoder.max_header_list_size)

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The header list of ``block`` (do not modify it: it may be shared).

        Raises:
            HPACKError: the block does not decode.
        """
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        headers = cast("list[tuple[bytes, bytes]]", self._decoder.decode(block, raw=True))
        if len(block.translate(None, _NOT_ONE_BYTE_INDEXED)) == len(block):
            if len(self._cache) >= 64:
                self._cache.clear()
            self._cache[block] = headers
        else:
            self._cache.clear()
        return headers
