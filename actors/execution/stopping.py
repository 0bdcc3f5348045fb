"""A clean stop of the executor: wait a little for the orders and fills still out.

:func:`finish_out` waits (at most ``wait`` seconds, on the monotonic clock) for the asks out
of the kinds ``order`` and ``record``, and has each answer acted on as it comes; what is
still out then the next start's venue sync finds at the venue. It runs on the executor's
thread, in ``on_stop``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress

from actors.execution.state import AskFor
from supervisor.pending_asks import PendingAsk, PendingAsks

__all__ = ["finish_out"]

log = logging.getLogger("actors.execution.executor")  # the executor's log, for its pieces too


def finish_out(asks: PendingAsks[AskFor], wait: float,
               answered: Callable[[PendingAsk[AskFor]], None],
               left: Callable[[], tuple[int, int]]) -> None:
    """Wait for the orders and fills out; ``left``: (orders unanswered, fills unacknowledged)
    for the warning when the wait ends first."""
    deadline = time.monotonic() + wait
    while True:
        out = [a for a in asks if a.what.kind in ("order", "record")]
        if not out:
            return
        for ask in out:
            with suppress(Exception):  # an answer that is a failure is acted on below
                ask.future.get(timeout=max(0.0, deadline - time.monotonic()))
            if not ask.future.done():
                orders, fills = left()
                log.warning("stopping with %d order(s) unanswered and %d fill(s) "
                            "unacknowledged; the next start's venue sync records "
                            "what the venue filled", orders, fills)
                return
            if asks.take(ask.token) is not None:
                answered(ask)
