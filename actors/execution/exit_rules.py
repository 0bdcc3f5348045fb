"""The exit rules, pure: which of stop loss, take profit, trailing stop and time stop a bar
fires for an open position, and the position's watch (entry, open time, high-water mark,
last request) after the bar. The exits actor (``exits.py``) holds one watch per position
and asks the executor to close it when :meth:`ExitRules.step` says so.

On one bar the rules are tried in this order, the first that fires wins: stop loss (the
low at or under ``stop_loss_pct`` below the entry), take profit (the high at or over
``take_profit_pct`` above it), trailing stop (once the high-water mark is
``trailing_activation_pct`` above the entry, the low at or under ``trailing_pct`` below
the mark), time stop (``time_stop_seconds`` of market time since the watch opened).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from actors.market.contract import Bar

__all__ = ["ExitReason", "ExitRules", "Watch"]

ExitReason = Literal["stop_loss", "take_profit", "trailing_stop", "time_stop"]


class Watch(NamedTuple):
    """One open position's watch: its entry, open time, high-water mark and last request.
    A tuple, so the exits actor publishes its watches as they are."""

    symbol: str
    entry: float
    opened_at: float
    high: float
    requested_at: float | None = None


@dataclass(frozen=True, slots=True)
class ExitRules:
    """The exit thresholds (percent of the entry, or of the high-water mark for the
    trailing stop; seconds of market time) and how soon an exit is asked for again while
    the position stays."""

    stop_loss_pct: float
    take_profit_pct: float
    trailing_pct: float
    trailing_activation_pct: float
    time_stop_seconds: float | None
    repeat_after_seconds: float

    def fired(self, bar: Bar, watch: Watch) -> ExitReason | None:
        """The first rule, in the module's order, that ``bar`` fires for ``watch`` (whose
        high already includes the bar's), or None."""
        if bar.low <= watch.entry * (1 - self.stop_loss_pct / 100):
            return "stop_loss"
        if bar.high >= watch.entry * (1 + self.take_profit_pct / 100):
            return "take_profit"
        activated = watch.high >= watch.entry * (1 + self.trailing_activation_pct / 100)
        if activated and bar.low <= watch.high * (1 - self.trailing_pct / 100):
            return "trailing_stop"
        if self.time_stop_seconds is not None and \
                bar.at - watch.opened_at >= self.time_stop_seconds:
            return "time_stop"
        return None

    def step(self, watch: Watch | None, entry: float, bar: Bar) -> tuple[Watch, ExitReason | None]:
        """The watch of a position held at ``entry`` after ``bar``, and the exit to ask for
        now (None: no rule fired, or one was asked for less than ``repeat_after_seconds``
        ago). A position without a watch, or whose entry changed, gets a new one opened at
        the bar with the entry as its high; the high only rises. The same ``watch`` object
        comes back when nothing about it changed."""
        if watch is None or watch.entry != entry:
            watch = Watch(bar.symbol, entry, bar.at, entry)
        if bar.high > watch.high:
            watch = watch._replace(high=bar.high)
        reason = self.fired(bar, watch)
        if reason is not None and (
                watch.requested_at is None
                or bar.at - watch.requested_at >= self.repeat_after_seconds):
            return watch._replace(requested_at=bar.at), reason
        return watch, None
