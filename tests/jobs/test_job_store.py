"""Job state in the registry database, on SQLite and PostgreSQL: claims, leases, progress."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from inferd.errors import Conflict
from inferd.jobs import ChunkResult, JobState, JobStore
from inferd.jobs.records import Chunk
from inferd.jobs.store import JobNotFound, LeaseLost, owner_is_dead
from inferd.registry import Registry

SPEC = {"model": "m", "inputs": ["x"], "output": "o"}
CHUNKS = [Chunk(0, 0, 0, 10), Chunk(1, 0, 10, 5)]


@pytest.fixture
def store(registry_url: str) -> Iterator[JobStore]:
    registry = Registry(registry_url)
    yield JobStore(registry.engine)
    registry.close()


def test_claim_is_exclusive_and_progress_checks_the_owner(store: JobStore) -> None:
    job = store.create(SPEC, {"digest": "d"}, 3, "alice")
    assert (job.state, job.version, job.created_by) == (JobState.QUEUED, 3, "alice")
    claimed = store.claim(job.id, "a", 30)
    assert claimed is not None
    assert claimed.state is JobState.RUNNING
    assert claimed.attempts == 1
    assert store.claim(job.id, "b", 30) is None  # a live lease: nobody else
    store.save_plan(job.id, "a", {"files": []}, CHUNKS)
    with pytest.raises(LeaseLost):
        store.finish_chunk(job.id, "b", ChunkResult(0, 9, 1, "part-000000.parquet"))
    after = store.finish_chunk(job.id, "a", ChunkResult(0, 9, 1, "part-000000.parquet"))
    again = store.finish_chunk(job.id, "a", ChunkResult(0, 9, 1, "part-000000.parquet"))
    assert (after.rows_total, after.rows_done, after.rows_failed) == (15, 9, 1)
    assert (again.rows_done, again.chunks_done) == (9, 1)  # a chunk counts once
    assert [c.seq for c, _ in store.chunks(job.id, done=False)] == [1]
    done = store.finish(job.id, "a", JobState.SUCCEEDED)
    assert done.state is JobState.SUCCEEDED
    assert done.finished_at is not None
    assert store.list_jobs()[0].id == job.id
    assert store.list_jobs("queued") == []


def test_expired_lease_or_dead_owner_lets_another_take_over(store: JobStore) -> None:
    job = store.create(SPEC, {}, 1, "")
    assert store.claim(job.id, "host-elsewhere:1:x", 0.05) is not None
    time.sleep(0.1)
    assert store.claimable() == [job.id]
    assert store.claim(job.id, "b", 30) is not None
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, "host-elsewhere:1:x", 30)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{__import__('socket').gethostname()}:{dead.pid}:x"
    assert owner_is_dead(owner)
    assert not owner_is_dead(f"elsewhere:{dead.pid}:x")
    other = store.create(SPEC, {}, 1, "")
    assert store.claim(other.id, owner, 300) is not None
    assert store.claim(other.id, "c", 30) is not None  # the owner process is gone: at once


def test_cancel_and_requeue(store: JobStore) -> None:
    queued = store.create(SPEC, {}, 1, "")
    assert store.cancel(queued.id).state is JobState.CANCELLED
    with pytest.raises(Conflict, match="cancelled already"):
        store.cancel(queued.id)
    running = store.create(SPEC, {}, 1, "")
    store.claim(running.id, "a", 30)
    asked = store.cancel(running.id)
    assert (asked.state, asked.cancel_requested) == (JobState.RUNNING, True)
    assert store.heartbeat(running.id, "a", 30) is True
    with pytest.raises(Conflict, match="is running"):
        store.requeue(running.id)
    store.finish(running.id, "a", JobState.CANCELLED, "cancelled")
    again = store.requeue(running.id)
    assert (again.state, again.cancel_requested, again.finished_at) == (
        JobState.QUEUED,
        False,
        None,
    )
    with pytest.raises(JobNotFound):
        store.get("j-nope")
