"""process_age: a process's age to the clock tick (psutil's create_time is off by up to a
second, its boot time being whole seconds)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from actors.common.process_age import process_age

pytestmark = pytest.mark.unit

TICK = 0.011  # a clock tick (10 ms), and a little more for rounding


def test_a_new_process_is_no_older_than_the_time_since_it_was_started() -> None:
    before = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c",
         "from actors.common.process_age import process_age; print(process_age())"],
        capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - before
    age = float(out.stdout)
    assert 0 <= age <= elapsed + TICK


def test_this_process_ages_as_the_clock_runs() -> None:
    first, t = process_age(), time.monotonic()
    later = process_age()
    assert first <= later <= first + (time.monotonic() - t) + TICK
