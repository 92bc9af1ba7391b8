"""The pre-scan of large JSON bodies: same meaning as orjson, refusals before parsing."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import orjson
import pytest

from inferd.errors import InvalidInput
from inferd.protocol import _prescan
from inferd.protocol._prescan import Cut, load_scanned
from inferd.protocol.predict import decode_predict_request
from inferd.protocol.v2 import decode_infer_request

BIG = _prescan.PRESCAN_BYTES


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks, cuts and pieces of a few bytes, so that small documents cross every border."""
    monkeypatch.setattr(_prescan, "CHUNK_BYTES", 7)
    monkeypatch.setattr(_prescan, "CUT_BYTES", 6)
    monkeypatch.setattr(_prescan, "PIECE_BYTES", 5)


def _text(rng: random.Random) -> str:
    return "".join(rng.choice('ab"\\[]{},: \n\u00e9') for _ in range(rng.randint(0, 6)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 5 or r < 0.3:
        return rng.choice([1, -2.5, True, False, None, 2**64 - 1, _text(rng)])
    if r < 0.65:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _loaded(value: Any) -> Any:
    if isinstance(value, Cut):
        return value.load("x")
    if isinstance(value, dict):
        return {k: _loaded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loaded(v) for v in value]
    return value


@pytest.mark.usefixtures("small_chunks")
def test_scan_means_what_orjson_reads() -> None:
    rng = random.Random(11)
    cuts = 0
    for n in range(300):
        doc = {"inputs": [{"name": "x", "data": _value(rng)} for _ in range(2)], "p": _value(rng)}
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if n % 2 else 0)
        scanned = load_scanned(text, 4, lambda path: True)
        cuts += sum(isinstance(e["data"], Cut) for e in scanned["inputs"])
        assert _loaded(scanned) == orjson.loads(text), text
    assert cuts > 20  # the documents did exercise cutting


@pytest.mark.usefixtures("small_chunks")
def test_escaped_quotes_and_backslash_runs_across_chunks() -> None:
    for pad in range(8):
        tricky = "x" * pad + '\\\\"' + "\\" * 9 + '"[],{}:'
        doc = {"s": tricky, "inputs": [{"data": [[1, 2], [3, 4]], "t": tricky + "\\"}]}
        text = orjson.dumps(doc)
        scanned = load_scanned(text, 4, lambda path: True)
        cut = scanned["inputs"][0]["data"]
        assert isinstance(cut, Cut)
        assert cut.values == 4
        assert _loaded(scanned) == doc


@pytest.mark.usefixtures("small_chunks")
def test_parse_numbers_matches_numpy_on_the_whole() -> None:
    rng = np.random.default_rng(3)
    cases: list[Any] = [
        rng.standard_normal(50).tolist(),
        rng.integers(-9, 9, (6, 5)).tolist(),
        [[True, False]] * 7,
        [1, 2.5, 3, True] * 5,
        [[1, 2], [3, 4.5]] * 4,
        [2**63, 1, 2] * 3,
    ]
    for n, data in enumerate(cases):
        text = orjson.dumps({"data": data})
        cut = load_scanned(text, 2, lambda path: True)["data"]
        parsed = cut.parse_numbers()
        whole = np.array(data)
        if parsed is None:  # pieces of mixed types: numpy's promotion of the whole decides
            assert n >= 3
            continue
        assert parsed.dtype == whole.dtype
        assert np.array_equal(parsed, whole)
    for data in ([[1, 2], [3]] * 4, ["a", "b", "c"], [1, [2]] * 4):
        text = orjson.dumps({"data": data})
        assert load_scanned(text, 2, lambda path: True)["data"].parse_numbers() is None


def _v2(shape: list[int], data: bytes, datatype: str = "FP32") -> bytes:
    head = orjson.dumps({"name": "x", "datatype": datatype, "shape": shape})[:-1]
    return b'{"inputs":[%s,"data":%s}]}' % (head, data)


def test_large_body_whose_data_contradicts_its_shape_is_refused_from_its_commas() -> None:
    count = BIG // 2
    body = _v2([4, 256], b"[" + b"1," * (count - 1) + b"1]")
    with pytest.raises(InvalidInput) as info:
        decode_infer_request(body, None, "m", None)
    assert str(info.value) == (
        f"inputs[0] 'x'.data: expected 1024 elements for shape [4, 256], got {count}"
    )


def test_large_body_declarations_are_checked_before_any_data_is_parsed() -> None:
    seen: list[tuple[str, str | None, list[int], int]] = []

    def check(name: str, datatype: str | None, shape: Any, elements: int) -> None:
        seen.append((name, datatype, list(shape), elements))
        if elements > 10**6:
            raise InvalidInput(f"input '{name}'", "a small tensor", f"{elements} elements")

    # The first input's data would not parse; the check refuses the second before that.
    bad = b"[" + b"0.5," * (BIG // 4) + b"nul]"
    body = (
        b'{"inputs":[{"name":"a","datatype":"FP32","shape":[%d],"data":%s},'
        b'{"name":"b","datatype":"INT8","shape":[2000,1000],"data":[1]}]}'
    ) % (BIG // 4 + 1, bad)
    with pytest.raises(InvalidInput, match="input 'b': expected a small tensor"):
        decode_infer_request(body, None, "m", None, check)
    assert seen == [
        ("a", "FP32", [BIG // 4 + 1], BIG // 4 + 1),
        ("b", "INT8", [2000, 1000], 2 * 10**6),
    ]


def test_large_body_decodes_as_a_small_one() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BIG // 64, 8)).astype(np.float32)
    ids = rng.integers(0, 2**40, BIG // 16)
    doc = {
        "id": "r",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.tolist()},
            {"name": "i", "datatype": "INT64", "shape": [ids.size], "data": ids.tolist()},
            {"name": "s", "datatype": "BYTES", "shape": [3], "data": ["a", "[", '"']},
        ],
        "parameters": {"priority": 2, "tags": list(range(20_000))},
    }
    body = orjson.dumps(doc)
    assert len(body) > BIG
    request, _ = decode_infer_request(body, None, "m", None)
    assert request.id == "r"
    assert request.priority == 2
    assert request.parameters["tags"] == list(range(20_000))  # a stray array, parsed
    assert np.array_equal(request.inputs["x"], x)
    assert request.inputs["x"].dtype == np.float32
    assert np.array_equal(request.inputs["i"], ids)
    assert request.inputs["s"].tolist() == [b"a", b"[", b'"']


def test_large_uint64_data_keeps_its_exact_values() -> None:
    data = [2**64 - 1, 2**63 + 1] * (BIG // 40)
    request, _ = decode_infer_request(
        _v2([len(data)], orjson.dumps(data), "UINT64"), None, "m", None
    )
    assert request.inputs["x"].dtype == np.uint64
    assert int(request.inputs["x"][0]) == 2**64 - 1
    assert int(request.inputs["x"][1]) == 2**63 + 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"inputs":[],"parameters":{"junk":[%s1]}}' % (b"1," * BIG),
            r"^parameters\.junk: expected at most 1048576 bytes of JSON here",
        ),
        (
            b'{"inputs":[],"parameters":{"s":"%s"}}' % (b"a" * (5 * BIG)),
            r"^body: expected at most 4194304 bytes of JSON outside tensor data arrays",
        ),
        (
            b'{"inputs":[],"parameters":{"s":[%s0]}}' % (b"{}," * BIG),
            r"^body: expected at most 65536 JSON objects, arrays and keys outside tensor data",
        ),
        (_v2([0], b"[" + b"[]," * BIG + b"[]]"), r"expected 0 elements for shape \[0\], got"),
        (_v2([4], b"[" + b"1 " * BIG + b"]"), r"^inputs\[0\] 'x'.data: expected 4 elements"),
        (
            _v2([BIG + 1], b"[" + b"1," * BIG + b"]"),
            r"^inputs\[0\] 'x'.data: expected a JSON array",
        ),
        (b'{"inputs":[{"data":[%s]]}' % (b"1," * BIG), r"^body: expected a JSON object"),
    ],
)
def test_large_hostile_bodies_are_refused(body: bytes, message: str) -> None:
    assert len(body) >= BIG
    with pytest.raises(InvalidInput, match=message):
        decode_infer_request(body, None, "m", None)


def test_large_predict_body_is_counted_before_it_is_parsed() -> None:
    counted: list[tuple[str, int]] = []

    def check(name: str, elements: int) -> None:
        counted.append((name, elements))

    data = list(range(BIG // 4))
    body = orjson.dumps({"model_name": "m", "input_data": {"x": data, "y": [1.5, 2]}})
    request = decode_predict_request(body, check)
    assert counted == [("x", len(data))]  # "y" is small: it stays in the skeleton
    assert np.array_equal(request.inputs["x"], data)
    assert request.inputs["y"].tolist() == [1.5, 2]
    assert math.prod(request.inputs["x"].shape) == len(data)
