"""Keep the objects that live as long as the process out of the garbage collector's way.

:func:`freeze_startup_objects` (run once the tree is up, unless ``runtime.gc_freeze`` is
off) collects what is garbage now, then ``gc.freeze()`` moves every object still alive into
the permanent generation, so later full collections, which stop every thread, walk only
what was made since. A frozen object that does become garbage stays (cycles among start-up
objects are rare; ``gc.unfreeze()`` gives them back). Why: ``docs/operations.md``.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_objects"]


def freeze_startup_objects() -> int:
    """Collect what is garbage now, then freeze every object still alive; returns how many
    objects are frozen in all."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
