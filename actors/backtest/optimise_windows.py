"""Walk-forward windows, pure: the training window a search runs on and the held-out window
after it that it never sees.

Either one ``--split`` fraction cuts the candle times of a span in two (the first
``floor(fraction * times)`` train, at least one; the rest, at least one, are held out), or
the four bounds are given (``--train-from``/``--train-until``,
``--test-from``/``--test-until``). Bounds are inclusive, in seconds; None is the data's
own start or end. The held-out window must start
after the training one ends; anything else is a :class:`WindowError` naming the options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Window", "WindowError", "explicit_windows", "split_window"]


class WindowError(ValueError):
    """Windows that cannot be used; the message names the options at fault."""


@dataclass(frozen=True, slots=True)
class Window:
    """Candles with ``since <= time <= until`` (None: unbounded on that side)."""

    since: float | None
    until: float | None


def split_window(first: float, last: float, timeframe_s: float,
                 fraction: float) -> tuple[Window, Window]:
    """Train on the first ``fraction`` of the candle times ``first, first + timeframe_s,
    .. last``, hold out the rest; each keeps at least one time."""
    if not 0 < fraction < 1:
        raise WindowError(f"--split {fraction!r} must be a fraction between 0 and 1 "
                          "(e.g. 0.7: train on the first 70%)")
    times = round((last - first) / timeframe_s) + 1
    cut = math.floor(fraction * times)  # < times, as fraction < 1: one is held out
    if cut < 1:
        raise WindowError(f"--split {fraction!r} leaves the training window empty: the "
                          f"span has {times} candle time(s)")
    return (Window(first, first + (cut - 1) * timeframe_s),
            Window(first + cut * timeframe_s, last))


def explicit_windows(train_from: float | None, train_until: float | None,
                     test_from: float | None, test_until: float | None) -> tuple[Window, Window]:
    """The windows the four options give; ``--train-until`` and ``--test-from`` are needed
    (where the training ends and the held-out part starts), the outer two default to the
    data's ends."""
    if train_until is None or test_from is None:
        missing = "--train-until" if train_until is None else "--test-from"
        raise WindowError(f"{missing} is needed with explicit windows (or give --split "
                          "instead)")
    if train_from is not None and train_from > train_until:
        raise WindowError("--train-until is before --train-from")
    if test_until is not None and test_until < test_from:
        raise WindowError("--test-until is before --test-from")
    if test_from <= train_until:
        raise WindowError("the held-out window overlaps the training one: --test-from must "
                          "be after --train-until (walk-forward tests on later candles)")
    return Window(train_from, train_until), Window(test_from, test_until)
