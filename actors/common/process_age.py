"""How long this process has run, to the kernel's clock tick (for start-up figures).

psutil's ``create_time()`` adds the start time to the boot time, which Linux gives to the
whole second, so an age computed from it is off by up to a second. :func:`process_age`
reads the start time in clock ticks since boot (``/proc/self/stat``) and compares it with
the boot-time clock, both counted from the same boot: the age is right to a tick (10 ms).
Where there is no ``/proc``, it falls back to psutil.

>>> 0 <= process_age() < 3600
True
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

__all__ = ["process_age"]

_START_FIELD = 19  # starttime, the 22nd field of /proc/PID/stat, counted after the name


def process_age() -> float:
    """Seconds since this process started."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[_START_FIELD])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time() - float(psutil.Process().create_time())
