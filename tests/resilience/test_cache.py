"""LocalCache: hits, LRU eviction by bytes, TTL on a fake clock; the request key."""

import numpy as np

from inferd.resilience.cache import KEY_OVERHEAD_BYTES, LocalCache, outputs_bytes
from inferd.resilience.key import request_key
from inferd.types import InferenceRequest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(value: float, rows: int = 4) -> dict[str, np.ndarray]:
    return {"y": np.full(rows, value, dtype=np.float32)}  # 16 bytes of data


def test_hit_miss_and_read_only_answers() -> None:
    cache = LocalCache(10_000, ttl_s=60, clock=Clock())
    assert cache.get(b"a") is None
    assert cache.put(b"a", answer(1.0))
    found = cache.get(b"a")
    assert found is not None
    np.testing.assert_array_equal(found["y"], [1, 1, 1, 1])
    assert not found["y"].flags.writeable  # every hit hands out the same array
    assert cache.bytes == 16 + KEY_OVERHEAD_BYTES


def test_evicts_least_recently_used_by_bytes() -> None:
    size = outputs_bytes(answer(0.0))
    evicted: list[str] = []
    cache = LocalCache(3 * size, ttl_s=60, clock=Clock(), on_evict=evicted.append)
    for key in (b"a", b"b", b"c"):
        cache.put(key, answer(1.0))
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"d", answer(2.0))
    assert cache.get(b"b") is None
    assert [cache.get(k) is not None for k in (b"a", b"c", b"d")] == [True, True, True]
    assert evicted == ["capacity"]
    assert cache.bytes == 3 * size
    big = {"y": np.zeros(1000, dtype=np.float32)}
    assert not cache.put(b"big", big)  # bigger than the whole cache: not kept, nothing evicted
    assert len(cache) == 3


def test_entries_expire_after_ttl() -> None:
    clock = Clock()
    evicted: list[str] = []
    cache = LocalCache(10_000, ttl_s=5, clock=clock, on_evict=evicted.append)
    cache.put(b"a", answer(1.0))
    clock.now += 4.9
    assert cache.get(b"a") is not None
    clock.now += 0.2
    assert cache.get(b"a") is None
    assert (evicted, cache.bytes, len(cache)) == (["expired"], 0, 0)


def test_replacing_a_key_keeps_the_byte_count_right() -> None:
    cache = LocalCache(10_000, ttl_s=5, clock=Clock())
    cache.put(b"a", answer(1.0))
    cache.put(b"a", answer(2.0, rows=8))
    assert cache.bytes == 32 + KEY_OVERHEAD_BYTES


def request(x: list[float], **parameters: object) -> InferenceRequest:
    return InferenceRequest("m", None, {"x": np.array(x, np.float32)}, parameters=dict(parameters))


def test_key_separates_versions_digests_inputs_and_answer_parameters() -> None:
    base = request_key("m", "1", "sha256:a", request([1, 2]))
    assert base == request_key("m", "1", "sha256:a", request([1, 2]))
    assert base != request_key("m", "2", "sha256:a", request([1, 2]))
    assert base != request_key("m", "1", "sha256:b", request([1, 2]))
    assert base != request_key("n", "1", "sha256:a", request([1, 2]))
    assert base != request_key("m", "1", "sha256:a", request([1, 3]))
    as_64 = InferenceRequest("m", None, {"x": np.array([1, 2], np.float64)})
    assert base != request_key("m", "1", "sha256:a", as_64)
    reshaped = InferenceRequest("m", None, {"x": np.array([[1, 2]], np.float32)})
    assert base != request_key("m", "1", "sha256:a", reshaped)
    assert base != request_key("m", "1", "sha256:a", request([1, 2], temperature=0.5))
    # scheduling parameters do not change the answer
    assert base == request_key("m", "1", "sha256:a", request([1, 2], timeout=5000, priority=1))


def test_key_of_bytes_inputs_is_length_prefixed() -> None:
    def of(items: list[bytes]) -> bytes:
        req = InferenceRequest("m", None, {"s": np.array(items, dtype=object)})
        return request_key("m", "1", "", req)

    assert of([b"ab", b"c"]) != of([b"a", b"bc"])
    assert of([b"ab", b"c"]) == of([b"ab", b"c"])
