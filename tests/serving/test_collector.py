"""The serving process's garbage-collector tuning (inferd.serving.collector)."""

from __future__ import annotations

import gc
import re
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.servers import Server

from inferd.api.app import build_app
from inferd.serving.collector import YOUNG_THRESHOLD, Collector
from inferd.settings import Settings


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    """Each test leaves the test process's collector as it found it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    """A collectable object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """A two-object reference cycle nothing else refers to; a weak reference to one of them."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_configure_sets_the_young_threshold_and_keeps_the_older_ones() -> None:
    _, middle, old = gc.get_threshold()
    Collector(young_threshold=12_345).configure()
    assert gc.get_threshold() == (12_345, middle, old)


def test_settle_freezes_what_survives_and_full_collections_skip_it() -> None:
    alive = [_Node() for _ in range(100)]
    Collector().settle()
    assert gc.get_freeze_count() >= len(alive)
    frozen = weakref.ref(alive[0])
    assert not any(obj is alive[0] for obj in gc.get_objects())  # out of every generation
    assert frozen() is not None


def test_a_cycle_that_was_frozen_is_freed_only_once_released() -> None:
    collector = Collector()
    holder = [_cycle()]  # the cycle is alive (referenced) when settle() freezes it
    ref = holder[0]
    first = ref()
    assert first is not None
    kept = [first]
    del first
    collector.settle()
    kept.clear()  # now garbage, but in a cycle among frozen objects
    gc.collect()
    assert ref() is not None, "a frozen cycle is not collected"
    collector.released()  # what the manager calls once a runtime is unloaded
    assert ref() is None


def test_settle_collects_garbage_cycles_before_freezing() -> None:
    ref = _cycle()
    Collector().settle()
    assert ref() is None


def test_disabled_changes_nothing() -> None:
    before = gc.get_threshold()
    collector = Collector(enabled=False)
    collector.configure()
    assert collector.settle() == 0.0
    assert collector.released() == 0.0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_threshold_below_one_is_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="young_threshold: expected at least 1, got 0"):
        Collector(young_threshold=0)
    assert YOUNG_THRESHOLD > 700  # above CPython's default, or the tuning does nothing


class _Counting(Collector):
    def __init__(self) -> None:
        super().__init__(enabled=False)  # the test process keeps its own collector
        self.settled = self.releases = 0

    def settle(self) -> float:
        self.settled += 1
        return 0.0

    def released(self) -> float:
        self.releases += 1
        return 0.0


async def test_the_app_releases_after_an_unload_but_not_at_shutdown(
    examples_dir: Path, tmp_path: Path
) -> None:
    collector = _Counting()
    settings = Settings(home=tmp_path, model_repository=examples_dir)  # type: ignore[call-arg]
    app = build_app(settings, collector=collector)
    assert app.dataplane.manager.collector is collector
    assert await app.dataplane.start() == {}
    try:
        assert collector.releases == 0
        await app.dataplane.manager.unload("linear")
        assert collector.releases == 1
    finally:
        await app.dataplane.stop()  # shutdown unloads the rest: no collection per unload
    assert collector.releases == 1


def test_a_server_freezes_its_start_up_objects_once_loaded(repo: Path, tmp_path: Path) -> None:
    with Server(repo, tmp_path, extra=["--log-level", "info"]) as server:
        server.wait_ready()
        deadline = time.monotonic() + 30
        while "objects frozen" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.output()
    found = re.search(r"garbage collector: (\d+) objects frozen", log)
    assert found is not None, log
    assert int(found.group(1)) > 10_000  # imports, runtimes and models
    assert log.index("garbage collector") > log.index("Application startup complete")
