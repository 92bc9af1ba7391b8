"""Online traffic first: the activity probe and the per-batch throttle of job workers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from inferd.jobs import throttle
from inferd.jobs.throttle import ActivityProbe, BusySignal, Throttle


def test_probe_is_busy_while_the_counter_moves() -> None:
    count = [0]
    probe = ActivityProbe(lambda: count[0], hold_s=60)
    assert probe() is False  # nothing answered since it started
    count[0] = 3
    assert probe() is True
    assert probe() is True  # held for hold_s after the last change
    idle = ActivityProbe(lambda: count[0], hold_s=0)
    count[0] = 4
    assert idle() is False  # hold 0: busy only for the instant of the change


def test_throttle_caps_the_duty_cycle_only_while_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(throttle.time, "sleep", slept.append)
    busy = threading.Event()
    quarter = Throttle(busy, 0.25)
    quarter(0.02)
    assert slept == []
    busy.set()
    quarter(0.02)
    assert slept == [pytest.approx(0.06)]  # 0.02 s of work, then 0.06 s asleep: 25 %
    Throttle(busy, 1.0)(0.02)
    assert len(slept) == 1


def test_busy_signal_mirrors_the_probe_into_an_event() -> None:
    state = [True]
    event = threading.Event()
    signal = BusySignal(lambda: state[0], event, interval_s=0.001).start()
    assert event.wait(5)
    state[0] = False
    deadline = time.monotonic() + 5
    while event.is_set() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not event.is_set()
    signal.stop()


def test_lower_priority_means_idle_scheduling_at_19() -> None:
    script = (
        "import os; from inferd.jobs.local import lower_priority; lower_priority(19); "
        "print(os.nice(0), os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["19", "True"]
