"""Tensor helpers shared by the codecs: JSON data and raw bytes to numpy arrays and back.

Numeric data never goes through a per-element Python loop: JSON lists are parsed by numpy in
one call, raw bytes are viewed with ``np.frombuffer``, and output arrays are handed to orjson
(``OPT_SERIALIZE_NUMPY``) as they are. BYTES tensors are the exception, since every element
has to be encoded or decoded on its own anyway.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from inferd.errors import InvalidInput
from inferd.types import DATATYPE_TO_DTYPE

# The binary extension is little-endian whatever the host; on little-endian hosts these
# compare equal to the native dtypes in DATATYPE_TO_DTYPE.
_WIRE_DTYPE: dict[str, np.dtype[Any]] = {
    name: dtype.newbyteorder("<") for name, dtype in DATATYPE_TO_DTYPE.items() if name != "BYTES"
}
_LENGTH = struct.Struct("<I")
# numpy kinds a JSON list may parse to for each kind of target; JSON booleans are only BOOL
# and JSON floats never go into integers (as Triton does).
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "strings"}


def load_json_object(body: bytes | memoryview) -> dict[str, Any]:
    """Parse a request body that must be a JSON object.

    Raises:
        InvalidInput: for field ``body``, with the parse error and the start of the body.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        head = bytes(body[:80]).decode("utf-8", errors="replace")
        raise InvalidInput("body", "a JSON object", f"invalid JSON ({err}): {head!r}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body", "a JSON object", describe(doc))
    return doc


def describe(value: object) -> str:
    """Describe a bad JSON value briefly for an error: its type and the start of its text."""
    if value is None:
        return "nothing (null or missing)"
    return f"{type(value).__name__} {value!r:.60}"


def json_object(raw: object, field: str) -> dict[str, Any]:
    """Return an optional JSON object field (``{}`` when absent) or raise InvalidInput."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(field, "a JSON object", describe(raw))
    return raw


def json_name(field: str, raw: object) -> str:
    """Return a tensor name: a non-empty string, or raise InvalidInput."""
    if not isinstance(raw, str) or not raw:
        raise InvalidInput(field, "a non-empty string", describe(raw))
    return raw


def json_shape(field: str, raw: object) -> list[int]:
    """Return a tensor shape: a list of integers >= 0, or raise InvalidInput."""
    if not isinstance(raw, list) or any(type(d) is not int for d in raw):
        raise InvalidInput(field, "a list of integers", describe(raw))
    if any(d < 0 for d in raw):
        raise InvalidInput(field, "dimensions >= 0", str(raw))
    check_shape_bounds(field, raw)
    return raw


# numpy refuses more dimensions than 64 and arrays past 2**63 bytes even when empty; refuse
# such shapes as bad input (400) before any array is made from them.
MAX_RANK = 32
_MAX_SPAN = 1 << 48


def check_shape_bounds(field: str, shape: list[int]) -> None:
    """Raise InvalidInput for a rank above MAX_RANK or dimensions whose product (zeros left
    out) could not be an array at all, e.g. ``[0, 2**62]``."""
    if len(shape) > MAX_RANK:
        raise InvalidInput(field, f"at most {MAX_RANK} dimensions", str(len(shape)))
    span = 1
    for d in shape:
        span *= d or 1
        if span > _MAX_SPAN:
            raise InvalidInput(
                field, f"dimensions whose product is at most {_MAX_SPAN}", str(shape)[:80]
            )


def array_from_json(
    name: str, index: int, datatype: str, shape: list[int], data: object
) -> np.ndarray:
    """Build an array from the ``data`` of a V2 JSON input, flat or nested.

    Args:
        name: the input's name, for errors.
        index: the input's position in the request, for errors.
        datatype: a V2 datatype name (one of ``inferd.types.DATATYPES``).
        shape: the declared shape; the element count must match it.
        data: the decoded JSON value: a list, possibly nested, in row-major order.

    Returns:
        An array of the datatype's dtype (object array of ``bytes`` for BYTES) and ``shape``.

    Raises:
        InvalidInput: a non-list, ragged lists, values that do not fit the datatype, or an
            element count that does not match the shape.
    """
    field = f"inputs[{index}] '{name}'.data"
    if not isinstance(data, list):
        raise InvalidInput(field, "a JSON array", type(data).__name__)
    if datatype == "BYTES":
        array = _bytes_from_json(field, data)
    else:
        array = _numbers_from_json(field, datatype, data)
    return _shaped(field, shape, array)


def array_from_parsed(
    name: str, index: int, datatype: str, shape: list[int], parsed: np.ndarray
) -> np.ndarray | None:
    """:func:`array_from_json` for numeric data numpy already parsed (``np.array(data)``).

    Returns:
        The array, or None when only the JSON values themselves can tell (numbers that
        numpy parsed as floats or objects for an integer datatype): then call
        :func:`array_from_json`.

    Raises:
        InvalidInput: as :func:`array_from_json`.
    """
    target = DATATYPE_TO_DTYPE[datatype]
    if datatype == "BYTES" or (target.kind in "iu" and parsed.dtype.kind in "fO"):
        return None
    field = f"inputs[{index}] '{name}'.data"
    return _shaped(field, shape, _numbers_from_parsed(field, datatype, target, parsed))


def _shaped(field: str, shape: list[int], array: np.ndarray) -> np.ndarray:
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(field, f"{expected} elements for shape {shape}", f"{array.size}")
    return array.reshape(shape)


def _numbers_from_json(field: str, datatype: str, data: list[Any]) -> np.ndarray:
    target = DATATYPE_TO_DTYPE[datatype]
    try:
        parsed = np.array(data)
    except (ValueError, TypeError) as err:
        raise InvalidInput(field, "a rectangular (non-ragged) array", f"{err}") from None
    if parsed.size and target.kind in "iu" and parsed.dtype.kind in "fO":
        # numpy turns integers past INT64 (valid UINT64 values) into floats: look closer.
        exact = _exact_integers(field, datatype, target, data)
        if exact is not None:
            return exact
    return _numbers_from_parsed(field, datatype, target, parsed)


def _numbers_from_parsed(
    field: str, datatype: str, target: np.dtype[Any], parsed: np.ndarray
) -> np.ndarray:
    if parsed.size == 0:
        return np.empty(0, dtype=target)
    if parsed.dtype.kind not in _ACCEPTED_KINDS[target.kind]:
        got = _KIND_NAMES.get(parsed.dtype.kind, "mixed or non-numeric values")
        expected = "true/false" if datatype == "BOOL" else f"{_KIND_NAMES[target.kind]}"
        raise InvalidInput(field, f"{expected} ({datatype})", got)
    if parsed.dtype != target and not np.can_cast(parsed.dtype, target, "safe"):
        if target.kind == "f":
            return _narrow_floats(field, datatype, target, parsed)
        _check_range(field, datatype, target, parsed)
    return parsed.astype(target, copy=False).reshape(-1)


def _narrow_floats(
    field: str, datatype: str, target: np.dtype[Any], parsed: np.ndarray
) -> np.ndarray:
    """Cast to a narrower float, refusing only values that become infinite.

    A range check on the wide values would refuse e.g. ``3.4028235e38``, the usual text of
    FP32's largest value, which rounds to it exactly.
    """
    with np.errstate(over="ignore"):
        cast = parsed.astype(target).reshape(-1)
    if np.isinf(cast).any() and (np.isinf(cast) & ~np.isinf(parsed.reshape(-1))).any():
        lowest, highest = _BOUNDS[datatype]
        raise InvalidInput(
            field, f"values in [{lowest}, {highest}] ({datatype})", "values out of that range"
        )
    return cast


def _exact_integers(
    field: str, datatype: str, target: np.dtype[Any], data: list[Any]
) -> np.ndarray | None:
    """Integers as Python ints, exactly; None when some value is not an integer."""
    try:
        flat = np.array(data, dtype=np.object_).reshape(-1).tolist()
    except (ValueError, TypeError):
        return None
    if not all(type(v) is int for v in flat):
        return None
    lowest, highest = _BOUNDS[datatype]
    if min(flat) < lowest or max(flat) > highest:
        raise InvalidInput(
            field, f"values in [{lowest}, {highest}] ({datatype})",
            f"values in [{min(flat)}, {max(flat)}]",
        )  # fmt: skip
    return np.array(flat, dtype=target)


def _bounds(dtype: np.dtype[Any]) -> tuple[float | int, float | int]:
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        return float(finfo.min), float(finfo.max)
    # Python ints compare exactly; float64 would round 2**63 down to INT64's maximum.
    iinfo = np.iinfo(dtype)
    return int(iinfo.min), int(iinfo.max)


# Computed once: np.finfo/np.iinfo cost microseconds, and this runs on every request.
_BOUNDS = {name: _bounds(dt) for name, dt in DATATYPE_TO_DTYPE.items() if dt.kind in "iuf"}


def _check_range(field: str, datatype: str, target: np.dtype[Any], parsed: np.ndarray) -> None:
    """Refuse values the cast would wrap around or overflow to infinity."""
    low, high = parsed.min().item(), parsed.max().item()
    lowest, highest = _BOUNDS[datatype]
    if low < lowest or high > highest:
        raise InvalidInput(
            field, f"values in [{lowest}, {highest}] ({datatype})", f"values in [{low}, {high}]"
        )


def _bytes_from_json(field: str, data: list[Any]) -> np.ndarray:
    items: list[bytes] = []
    _encode_strings(field, data, items)
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array


def _encode_strings(field: str, data: list[Any], out: list[bytes], depth: int = 1) -> None:
    if depth > MAX_RANK:  # deeper than any valid shape; and Python's recursion has limits
        raise InvalidInput(field, f"lists nested at most {MAX_RANK} deep", "deeper nesting")
    for item in data:
        if isinstance(item, str):
            out.append(item.encode("utf-8"))
        elif isinstance(item, list):
            _encode_strings(field, item, out, depth + 1)
        else:
            raise InvalidInput(field, "strings (BYTES)", f"{type(item).__name__} {item!r:.40}")


def array_from_bytes(
    name: str, datatype: str, shape: list[int], raw: memoryview | bytes
) -> np.ndarray:
    """Build an array from the raw bytes of a binary tensor (Triton's binary extension).

    Numeric tensors are little-endian in row-major order; BYTES tensors are a sequence of
    elements, each a 4-byte little-endian length followed by that many bytes.

    Args:
        name: the input's name, for errors.
        datatype: a V2 datatype name.
        shape: the declared shape.
        raw: exactly the tensor's bytes.

    Returns:
        An array of ``shape``. Numeric arrays are read-only views of ``raw`` when ``raw`` is
        immutable and its start is aligned for the dtype; otherwise they are aligned copies.

    Raises:
        InvalidInput: the byte count does not match the shape and datatype.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _split_bytes(name, raw, count).reshape(shape)
    dtype = _WIRE_DTYPE[datatype]
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input '{name}' binary data",
            f"{expected} bytes for {datatype} shape {shape}",
            f"{len(raw)} bytes",
        )
    array = np.frombuffer(raw, dtype=dtype)
    if not array.dtype.isnative or not array.flags.aligned:
        array = array.astype(dtype.newbyteorder("="))
    if datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"input '{name}' binary data", "BOOL bytes of 0 or 1", "other values")
    return array.reshape(shape)


def _split_bytes(name: str, raw: memoryview | bytes, count: int) -> np.ndarray:
    view = memoryview(raw)
    end = len(view)
    items: list[bytes] = []
    offset = 0
    while offset < end and len(items) < count:
        if offset + 4 > end:
            break
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            break
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count or offset != end:
        raise InvalidInput(
            f"input '{name}' binary data",
            f"{count} length-prefixed BYTES elements filling {end} bytes",
            f"{len(items)} whole elements using {offset} bytes",
        )
    array = np.empty(count, dtype=np.object_)
    array[:] = items
    return array


def array_to_bytes(arr: np.ndarray) -> bytes:
    """Serialise an array for the binary extension (inverse of :func:`array_from_bytes`).

    Args:
        arr: a numeric array, or a BYTES array (object of ``bytes``/``str``, or ``S``/``U``).

    Returns:
        Little-endian row-major bytes; BYTES elements are 4-byte length prefixed.
    """
    if arr.dtype.kind in "OSU":
        parts: list[bytes] = []
        for item in arr.reshape(-1).tolist():
            data = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="C")


def array_to_json_data(arr: np.ndarray, *, nested: bool = False) -> object:
    """Return what orjson (with ``OPT_SERIALIZE_NUMPY``) should write as a tensor's data.

    Args:
        arr: any array with a V2 datatype.
        nested: keep the array's shape (nested lists, or a scalar for 0-d) instead of the
            flat row-major list the V2 protocol uses.

    Returns:
        A C-contiguous native-endian numeric array (orjson writes it without a Python loop),
        or a list of ``str`` for BYTES tensors (invalid UTF-8 replaced), or a scalar.
    """
    if arr.dtype.kind in "OSU":
        decoded = np.empty(arr.shape, dtype=np.object_)
        decoded.reshape(-1)[:] = [_to_str(item) for item in arr.reshape(-1).tolist()]
        return decoded.tolist() if nested else decoded.reshape(-1).tolist()
    if arr.dtype.kind == "f" and arr.dtype.itemsize == 2:
        # Older orjson releases cannot serialise float16; float32 holds every float16 value.
        arr = arr.astype(np.float32)
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not nested:
        return np.ascontiguousarray(arr).reshape(-1)
    # orjson refuses 0-d arrays.
    return arr.item() if arr.ndim == 0 else np.ascontiguousarray(arr)


def wire_tensor(
    name: str, datatype: str, array: np.ndarray, binary: bool, chunks: list[bytes]
) -> dict[str, Any]:
    """The V2 JSON entry of a tensor; with ``binary`` its bytes go to ``chunks`` instead of
    ``data`` (the binary extension). Requests and responses are written alike."""
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if binary:
        raw = array_to_bytes(array)
        chunks.append(raw)
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        tensor["data"] = array_to_json_data(array)
    return tensor


def _to_str(item: object) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    return str(item)


__all__ = [
    "array_from_bytes",
    "array_from_json",
    "array_from_parsed",
    "array_to_bytes",
    "array_to_json_data",
    "describe",
    "json_name",
    "json_object",
    "json_shape",
    "load_json_object",
    "wire_tensor",
]
