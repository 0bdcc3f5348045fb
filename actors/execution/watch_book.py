"""The watches of the open positions, pure: one :class:`WatchBook` per exits actor (and
per backtest) steps each held symbol's bar through the exit rules and says which exit
requests they make. The rules themselves: :mod:`actors.execution.exit_rules`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from actors.execution.contract import ExitRequest
from actors.execution.exit_rules import ExitPlan, ExitRules, Watch
from actors.market.contract import Bar

__all__ = ["WatchBook"]


class WatchBook:
    """Owns the watch of each open position (``watches``: symbol -> its :class:`Watch`).

    :meth:`on_bars` takes a step's bars with the positions as of ledger ``seq`` (symbol ->
    a position with ``quantity`` and ``avg_price``): a watch whose symbol is no longer held
    is dropped when ``seq`` moves; each long position's bar steps its watch, a new watch
    (or one whose entry moved) taking the plan ``plan_of(symbol)`` gives; the exit
    requests the rules fire come back, in bar order."""

    def __init__(self, rules: ExitRules, watches: Iterable[Watch] = ()) -> None:
        self.rules = rules
        self.watches: dict[str, Watch] = {w.symbol: w for w in watches}
        self._seq: int | None = None  # the ledger seq the watches were last pruned at

    def on_bars(self, bars: Iterable[Bar], positions: Mapping[str, Any], seq: int,
                plan_of: Callable[[str], ExitPlan | None]) -> tuple[list[ExitRequest], bool]:
        """The exit requests of ``bars``, and whether any watch changed."""
        watches = self.watches
        step = self.rules.step
        changed = False
        if seq != self._seq:  # positions change only with the ledger's seq
            self._seq = seq
            for symbol in [s for s in watches if s not in positions]:
                del watches[symbol]
                changed = True
        requests: list[ExitRequest] = []
        for bar in bars:
            symbol = bar.symbol
            pos = positions.get(symbol)
            if pos is None or pos.quantity <= 0:
                continue
            was = watches.get(symbol)
            entry = float(pos.avg_price)
            plan = plan_of(symbol) if was is None or was.entry != entry else None
            watch, reason = step(was, entry, bar, plan)
            if reason is not None:
                requests.append(ExitRequest.on(bar, reason))
            if watch is not was:
                watches[symbol] = watch
                changed = True
        return requests, changed
