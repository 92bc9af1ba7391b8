"""RedisCache against a real redis-server: round trips, TTL, and Redis going away."""

from pathlib import Path

import numpy as np
import redis
from fixtures.redis import redis_server

from inferd.resilience.redis_cache import RedisCache, decode_outputs, encode_outputs


def test_encoding_round_trips_every_numeric_dtype_and_refuses_bytes() -> None:
    outputs = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([True, False]),
        "c": np.array([[1], [2]], dtype=np.int64),
        "d": np.zeros((0, 4), np.float16),
    }
    raw = encode_outputs(outputs)
    assert raw is not None
    back = decode_outputs(raw)
    assert list(back) == list(outputs)
    for name, array in outputs.items():
        assert back[name].dtype == array.dtype
        np.testing.assert_array_equal(back[name], array)
    assert encode_outputs({"s": np.array([b"x"], dtype=object)}) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_shared_answers_and_a_redis_that_goes_away(tmp_path: Path) -> None:
    errors: list[str] = []
    clock = Clock()
    with redis_server(tmp_path / "redis") as url:
        writer = RedisCache(url, on_error=errors.append, clock=clock)
        reader = RedisCache(url, on_error=errors.append, clock=clock)
        answer = {"y": np.array([1.5, 2.5], np.float32)}
        assert await reader.get(b"k") is None
        await writer.set(b"k", answer, ttl_s=60)
        found = await reader.get(b"k")
        assert found is not None
        np.testing.assert_array_equal(found["y"], answer["y"])
    # redis-server has stopped: calls fail quietly, are counted, then skipped for backoff_s
    assert await reader.get(b"k") is None
    assert errors == ["get"]
    assert await reader.get(b"k") is None
    await reader.set(b"k", answer, ttl_s=60)
    assert errors == ["get"]  # within the back-off nothing is tried
    clock.now += reader.backoff_s
    await reader.set(b"k", answer, ttl_s=60)
    assert errors == ["get", "set"]
    await writer.close()
    await reader.close()


async def test_garbage_under_a_key_is_a_counted_miss(tmp_path: Path) -> None:
    errors: list[str] = []
    with redis_server(tmp_path / "redis") as url:
        raw = redis.Redis.from_url(url)
        raw.set(b"inferd:cache:k", b"not an answer")
        raw.close()
        cache = RedisCache(url, on_error=errors.append)
        assert await cache.get(b"k") is None
        await cache.close()
    assert errors == ["get"]
