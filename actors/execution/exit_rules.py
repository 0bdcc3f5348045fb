"""The exit rules, pure: which of stop loss, take profit, trailing stop and time stop a bar
fires for an open position, and the position's watch (entry, open time, high-water mark,
last request, the plan's stop and target prices) after the bar. The exits actor
(``exits.py``) holds one watch per position and asks the executor to close it when
:meth:`ExitRules.step` says so.

On one bar the rules are tried in this order, the first that fires wins: stop loss (the
low at or under the plan's stop price, or with none ``stop_loss_pct`` below the entry),
take profit (the high at or over the plan's target price, or with none
``take_profit_pct`` above the entry), trailing stop (once the high-water mark is
``trailing_activation_pct`` above the entry, the low at or under ``trailing_pct`` below
the mark), time stop (``time_stop_seconds`` of market time since the watch opened). A
plan (:class:`ExitPlan`, the strategy's, from its entry) replaces only the percentage it
gives a price for; the trailing and time stops apply with or without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from actors.market.contract import Bar

__all__ = ["ExitPlan", "ExitReason", "ExitRules", "Watch"]

ExitReason = Literal["stop_loss", "take_profit", "trailing_stop", "time_stop"]


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """A position's own exit levels, from the strategy's entry: the stop price and the
    target price (None: the percentage rule applies for that one)."""

    stop: float | None = None
    target: float | None = None

    @classmethod
    def of(cls, price: float, stop_distance: float, take_profit: float | None) -> ExitPlan:
        """The plan of an entry signalled at ``price``: the stop ``stop_distance`` under
        it (none when the distance is 0, or reaches 0 or below), the target
        ``take_profit`` (none when None)."""
        stop = price - stop_distance if stop_distance > 0 else None
        return cls(stop if stop is not None and stop > 0 else None, take_profit)


NO_PLAN = ExitPlan()
_new_watch = tuple.__new__


class Watch(NamedTuple):
    """One open position's watch: its entry, open time, high-water mark, last request, and
    the stop and target prices of its plan (None: the percentage rule). A tuple, so the
    exits actor publishes its watches as they are."""

    symbol: str
    entry: float
    opened_at: float
    high: float
    requested_at: float | None = None
    stop: float | None = None
    target: float | None = None


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
        entry = watch.entry
        stop = watch.stop
        if bar.low <= (entry * (1 - self.stop_loss_pct / 100) if stop is None else stop):
            return "stop_loss"
        target = watch.target
        if bar.high >= (entry * (1 + self.take_profit_pct / 100) if target is None
                        else target):
            return "take_profit"
        activated = watch.high >= entry * (1 + self.trailing_activation_pct / 100)
        if activated and bar.low <= watch.high * (1 - self.trailing_pct / 100):
            return "trailing_stop"
        if self.time_stop_seconds is not None and \
                bar.at - watch.opened_at >= self.time_stop_seconds:
            return "time_stop"
        return None

    def step(self, watch: Watch | None, entry: float, bar: Bar,
             plan: ExitPlan | None = None) -> tuple[Watch, ExitReason | None]:
        """The watch of a position held at ``entry`` after ``bar``, and the exit to ask for
        now (None: no rule fired, or one was asked for less than ``repeat_after_seconds``
        ago). A position without a watch, or whose entry changed, gets a new one opened at
        the bar with the entry as its high and the levels of ``plan`` (None: no plan, the
        percentage rules); an existing watch keeps its levels (``plan`` is read only when a
        watch opens). The high only rises. The same ``watch`` object comes back when
        nothing about it changed."""
        if watch is None or watch.entry != entry:
            levels = NO_PLAN if plan is None else plan
            watch = Watch(bar.symbol, entry, bar.at, entry, None, levels.stop, levels.target)
        if bar.high > watch.high:  # (a tuple made whole: _replace costs three times more)
            watch = _new_watch(Watch, (watch[0], watch[1], watch[2], bar.high, watch[4],
                                       watch[5], watch[6]))
        reason = self.fired(bar, watch)
        if reason is not None and (
                watch.requested_at is None
                or bar.at - watch.requested_at >= self.repeat_after_seconds):
            return watch._replace(requested_at=bar.at), reason
        return watch, None
