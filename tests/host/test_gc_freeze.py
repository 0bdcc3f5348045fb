"""``runtime.gc_freeze``: once the tree is up, `botvisor run` freezes the objects alive, so
full collections stop walking them (and stop pausing every thread for tens of ms)."""

from __future__ import annotations

import subprocess
import sys


def test_freezing_start_up_objects_takes_them_out_of_the_collectors_walk() -> None:
    """In a fresh interpreter (a freeze lasts for the process): every object alive at the
    freeze is in the permanent generation, and a full collection afterwards walks only what
    was made since."""
    script = (
        "import gc\n"
        "from supervisor.host.gc_freeze import freeze_startup_objects\n"
        "before = len(gc.get_objects())\n"
        "frozen = freeze_startup_objects()\n"
        "assert frozen == gc.get_freeze_count() and frozen >= before * 0.9, (frozen, before)\n"
        "made = [[i] for i in range(1000)]\n"
        "assert 1000 <= len(gc.get_objects()) < 1000 + before * 0.1, len(gc.get_objects())\n"
        "print('ok', frozen)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
