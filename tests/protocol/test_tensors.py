"""Tensor helpers: JSON data and raw bytes to arrays and back, for every datatype."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from inferd.errors import InvalidInput
from inferd.protocol._tensors import (
    array_from_bytes,
    array_from_json,
    array_to_bytes,
    array_to_json_data,
)
from inferd.types import DATATYPE_TO_DTYPE, DATATYPES

NUMERIC = [d for d in DATATYPES if d != "BYTES"]


def sample(datatype: str, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """A small array of ``datatype`` with distinct, exactly representable values."""
    count = int(np.prod(shape))
    if datatype == "BYTES":
        return np.array([f"é{i}".encode() for i in range(count)], dtype=np.object_).reshape(shape)
    if datatype == "BOOL":
        return (np.arange(count) % 2 == 0).reshape(shape)
    values = np.arange(count) * (1.5 if datatype.startswith("FP") else 3)
    return values.astype(DATATYPE_TO_DTYPE[datatype]).reshape(shape)


def json_roundtrip(arr: np.ndarray) -> Any:
    return orjson.loads(orjson.dumps(array_to_json_data(arr), option=orjson.OPT_SERIALIZE_NUMPY))


@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_round_trips_through_json(datatype: str) -> None:
    arr = sample(datatype)
    data = json_roundtrip(arr)
    back = array_from_json("x", 0, datatype, [2, 3], data)
    assert back.dtype == DATATYPE_TO_DTYPE[datatype]
    assert back.shape == (2, 3)
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_round_trips_through_bytes(datatype: str) -> None:
    arr = sample(datatype)
    back = array_from_bytes("x", datatype, [2, 3], array_to_bytes(arr))
    assert back.dtype == DATATYPE_TO_DTYPE[datatype]
    np.testing.assert_array_equal(back, arr)


def test_nested_and_flat_json_give_the_same_array() -> None:
    flat = array_from_json("x", 0, "FP32", [2, 2], [1.0, 2.0, 3.0, 4.0])
    nested = array_from_json("x", 0, "FP32", [2, 2], [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(flat, nested)
    strings = array_from_json("s", 0, "BYTES", [2, 1], [["a"], ["b"]])
    assert strings.tolist() == [[b"a"], [b"b"]]


def test_integers_are_accepted_for_floats_and_empty_tensors_work() -> None:
    arr = array_from_json("x", 0, "FP32", [3], [1, 2.5, 3])
    assert arr.dtype == np.float32
    np.testing.assert_array_equal(arr, [1.0, 2.5, 3.0])
    empty = array_from_json("x", 0, "INT32", [0, 4], [])
    assert empty.shape == (0, 4)
    assert empty.dtype == np.int32


def test_int64_and_uint64_limits_are_exact() -> None:
    top = 2**63 - 1
    assert array_from_json("x", 0, "INT64", [1], [top])[0] == top
    assert array_from_json("x", 0, "UINT64", [1], [2**64 - 1])[0] == 2**64 - 1
    with pytest.raises(InvalidInput, match="INT64"):
        array_from_json("x", 0, "INT64", [1], [2**63])


@pytest.mark.parametrize(
    ("datatype", "data", "match"),
    [
        ("FP32", ["1.5"], "strings"),
        ("FP32", [True], "booleans"),
        ("INT64", [1.5], "numbers"),
        ("INT32", [1.0], "INT32"),
        ("UINT8", [300], r"values in \[0, 255\]"),
        ("UINT8", [-1], "UINT8"),
        ("INT8", [-129], "INT8"),
        ("FP16", [70000.0], "FP16"),
        ("FP32", [1e300], "FP32"),
        ("BOOL", [1, 0], "true/false"),
        ("FP32", [1.0, None], "non-numeric"),
        ("BYTES", ["a", 1], "strings"),
        ("FP32", [[1.0, 2.0], [3.0]], "rectangular"),
        ("FP32", "1.0", "JSON array"),
    ],
)
def test_values_that_do_not_fit_the_datatype_are_refused(
    datatype: str, data: object, match: str
) -> None:
    shape = [2, 2] if isinstance(data, list) and isinstance(data[0], list) else [len(data)]
    with pytest.raises(InvalidInput, match=match) as info:
        array_from_json("x", 3, datatype, shape, data)
    assert info.value.field == "inputs[3] 'x'.data"


def test_element_count_must_match_the_shape() -> None:
    with pytest.raises(InvalidInput) as info:
        array_from_json("x", 1, "FP32", [2, 2], [1.0, 2.0, 3.0])
    assert str(info.value) == "inputs[1] 'x'.data: expected 4 elements for shape [2, 2], got 3"


def test_binary_size_mismatch_names_the_input_and_byte_counts() -> None:
    with pytest.raises(InvalidInput) as info:
        array_from_bytes("x", "FP32", [2, 2], b"\0" * 12)
    assert "input 'x'" in str(info.value)
    assert "16 bytes" in str(info.value)
    assert "12 bytes" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x05\0\0\0abc",  # element shorter than its length
        b"\x01\0\0\0a\x01\0",  # truncated length prefix
        b"\x01\0\0\0a\x01\0\0\0b\x01\0\0\0c",  # one element too many
        b"\x01\0\0\0a",  # one element too few
    ],
)
def test_malformed_binary_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match="input 's' binary data"):
        array_from_bytes("s", "BYTES", [2], raw)


def test_binary_bool_must_be_zero_or_one() -> None:
    with pytest.raises(InvalidInput, match="BOOL"):
        array_from_bytes("b", "BOOL", [2], b"\x01\x02")


def test_binary_arrays_are_aligned_even_at_odd_offsets() -> None:
    body = memoryview(b"\0" + np.arange(4, dtype=np.float64).tobytes())
    arr = array_from_bytes("x", "FP64", [4], body[1:])
    assert arr.flags.aligned
    np.testing.assert_array_equal(arr, [0.0, 1.0, 2.0, 3.0])


def test_bytes_outputs_accept_str_bytes_and_fixed_width_arrays() -> None:
    expected = b"\x01\0\0\0a\x02\0\0\0\xc3\xa9"
    assert array_to_bytes(np.array(["a", "é"], dtype=np.object_)) == expected
    assert array_to_bytes(np.array(["a", "é"])) == expected
    assert array_to_bytes(np.array([b"a", "é".encode()], dtype="S")) == expected


def test_json_data_of_bytes_decodes_with_replacement() -> None:
    arr = np.array([b"ok", b"\xff"], dtype=np.object_)
    assert array_to_json_data(arr) == ["ok", "\ufffd"]


def test_json_data_of_awkward_arrays_serialises() -> None:
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    big_endian = np.arange(3, dtype=">i4")
    for arr in (strided, big_endian, np.float32(2.5) * np.ones(()), strided.T):
        np.testing.assert_array_equal(json_roundtrip(arr), arr.reshape(-1))


def test_nested_json_data_keeps_the_shape() -> None:
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    dumped = orjson.dumps(array_to_json_data(arr, nested=True), option=orjson.OPT_SERIALIZE_NUMPY)
    assert orjson.loads(dumped) == [[0, 1, 2], [3, 4, 5]]
    assert array_to_json_data(np.array(1.5), nested=True) == 1.5
    strings = np.array([[b"a"], [b"b"]], dtype=np.object_)
    assert array_to_json_data(strings, nested=True) == [["a"], ["b"]]


def test_numeric_json_data_is_handed_to_orjson_as_an_array() -> None:
    """No per-element Python conversion on the numeric hot path."""
    assert isinstance(array_to_json_data(np.ones((4, 10), dtype=np.float32)), np.ndarray)
    assert isinstance(array_to_json_data(np.ones(3, dtype=np.float16)), np.ndarray)


def test_uint64_beyond_int64_and_fp32_extremes_decode_exactly() -> None:
    big = array_from_json("x", 0, "UINT64", [2], [2**64 - 1, 2**63])
    assert big.tolist() == [2**64 - 1, 2**63]
    assert big.dtype == np.uint64
    top = array_from_json("x", 0, "FP32", [2], [3.4028235e38, -3.4028235e38])
    assert np.isfinite(top).all()
    with pytest.raises(InvalidInput, match="UINT64"):
        array_from_json("x", 0, "UINT64", [1], [2**64])
    with pytest.raises(InvalidInput, match="FP32"):
        array_from_json("x", 0, "FP32", [1], [1e39])
