"""Reconciliation's rules: compare every source with the ledger, pick the winners.

:class:`Reconciler` is pure: from a :class:`LedgerState` and the sources' views it finds
the conflicts (``missing``, ``phantom``, ``quantity``, ``price``, ``balance``, ``stale``)
and, by its ``conflict_strategy``, the value that wins for each symbol and for cash, the
sources to reset and whether to halt. The position actor gathers the views
(:mod:`actors.portfolio.gathering`), applies the decision to its ledger and tells the
sources and the breaker. The kinds and strategies: docs/trading-bot.md ("Positions").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from actors.common.messages import Alert
from actors.portfolio.contract import Conflict, PositionView, SourceView

__all__ = ["LedgerState", "Reconciler", "Resolution"]

LEDGER = "ledger"
PRIORITY_SOURCE = {
    "trade_manager_priority": "trade_manager",
    "paper_wallet_priority": "paper_wallet",
}


@dataclass(frozen=True, slots=True)
class LedgerState:
    """What the reconciler reads of the ledger: its seq, cash, positions and the time of
    its last change."""

    seq: int
    cash: Decimal
    positions: Mapping[str, PositionView]
    changed_at: float = 0.0


Value = tuple[Decimal, Decimal] | None  # (quantity, avg price), None when flat


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to do to the ledger: halt trading (``emergency_reset``), or set positions
    (symbol, value, winner) and the cash (value, winner) to the winners' values."""

    halt: bool
    positions: tuple[tuple[str, Value, str], ...] = ()
    cash: tuple[Decimal, str] | None = None


class Reconciler:
    """Owns the comparison and resolution rules; pure over the ledger's state and the
    sources' views."""

    def __init__(self, strategy: str, price_tolerance: Decimal) -> None:
        self.strategy = strategy
        self.price_tolerance = price_tolerance

    # -- detection -----------------------------------------------------------------------------
    def detect(self, source: str, view: SourceView, ledger: LedgerState) -> list[Conflict]:
        """Where ``source``'s ``view`` disagrees with ``ledger``."""
        mine = ledger.positions
        found: list[Conflict] = []
        if view.last_seq != ledger.seq:
            found.append(Conflict(source, "stale", None, str(ledger.seq), str(view.last_seq)))
        for symbol in sorted(set(mine) | set(view.positions)):
            a, b = mine.get(symbol), view.positions.get(symbol)
            if b is None and a is not None:
                found.append(Conflict(source, "missing", symbol, _fmt(a), None))
            elif a is None and b is not None:
                found.append(Conflict(source, "phantom", symbol, None, _fmt(b)))
            elif a is not None and b is not None:
                if a.quantity != b.quantity:
                    found.append(Conflict(source, "quantity", symbol, str(a.quantity),
                                          str(b.quantity)))
                elif not self._same_price(a.avg_price, b.avg_price):
                    found.append(Conflict(source, "price", symbol, str(a.avg_price),
                                          str(b.avg_price)))
        if view.cash is not None and view.cash != ledger.cash:
            found.append(Conflict(source, "balance", None, str(ledger.cash), str(view.cash)))
        return found

    def detect_all(self, views: Mapping[str, SourceView], ledger: LedgerState) -> list[Conflict]:
        return [c for src, view in views.items() for c in self.detect(src, view, ledger)]

    def _same_price(self, a: Decimal, b: Decimal) -> bool:
        if a == b:
            return True
        scale = max(abs(a), abs(b))
        return abs(a - b) <= scale * self.price_tolerance

    # -- resolution ----------------------------------------------------------------------------
    def resolve(self, views: Mapping[str, SourceView], ledger: LedgerState) -> Resolution:
        """The winners' values where they differ from the ledger's (see the module)."""
        strategy = self.strategy
        if strategy == "emergency_reset":
            return Resolution(halt=True)
        mine = ledger.positions
        changes: list[tuple[str, Value, str]] = []
        symbols = sorted(set(mine).union(*(v.positions for v in views.values())))
        for symbol in symbols:
            winner, value = self._winner(symbol, ledger, views)
            if winner != LEDGER and not self._same(value, _value(mine.get(symbol))):
                changes.append((symbol, value, winner))
        cash_winner, cash = self._cash_winner(views, ledger)
        chosen = None
        if cash_winner != LEDGER and cash is not None and cash != ledger.cash:
            chosen = (cash, cash_winner)
        return Resolution(False, tuple(changes), chosen)

    def to_reset(self, views: Mapping[str, SourceView], ledger: LedgerState) -> list[str]:
        """The sources that still differ from ``ledger`` (after the resolution)."""
        return [source for source, view in views.items() if self.detect(source, view, ledger)]

    def _winner(
        self, symbol: str, ledger: LedgerState, views: Mapping[str, SourceView],
    ) -> tuple[str, Value]:
        strategy, mine = self.strategy, ledger.positions
        ledger_value = _value(mine.get(symbol))
        if strategy in PRIORITY_SOURCE:
            source = PRIORITY_SOURCE[strategy]
            view = views.get(source)
            if view is None:
                return LEDGER, ledger_value
            return source, _value(view.positions.get(symbol))
        if strategy == "merge":
            votes: Counter[Value] = Counter()
            voters: dict[Value, str] = {}
            for name, val in [(LEDGER, ledger_value)] + [
                (n, _value(v.positions.get(symbol))) for n, v in views.items()
            ]:
                key = self._canonical(val, votes)
                votes[key] += 1
                voters.setdefault(key, name)
            best = max(votes.values())
            leaders = [k for k, n in votes.items() if n == best]
            ledger_key = self._canonical(ledger_value, votes)
            if ledger_key in leaders:
                return LEDGER, ledger_value
            return voters[leaders[0]], leaders[0]
        if strategy == "most_recent":
            led = mine.get(symbol)
            best_name, best_val = LEDGER, ledger_value
            best_time = led.updated_at if led else ledger.changed_at
            for name, view in views.items():
                pos = view.positions.get(symbol)
                when = pos.updated_at if pos else view_updated_at(view)
                if when > best_time:
                    best_name, best_val, best_time = name, _value(pos), when
            return best_name, best_val
        return LEDGER, ledger_value

    def _cash_winner(
        self, views: Mapping[str, SourceView], ledger: LedgerState
    ) -> tuple[str, Decimal | None]:
        strategy = self.strategy
        cash_views = {n: v.cash for n, v in views.items() if v.cash is not None}
        if strategy in PRIORITY_SOURCE:
            source = PRIORITY_SOURCE[strategy]
            if source in cash_views:
                return source, cash_views[source]
        if strategy == "merge":
            votes = Counter([ledger.cash, *cash_views.values()])
            best = max(votes.values())
            if votes[ledger.cash] == best:
                return LEDGER, None
            value = next(v for v, n in votes.items() if n == best)
            name = next(n for n, v in cash_views.items() if v == value)
            return name, value
        if strategy == "most_recent":
            latest = ledger.changed_at
            chosen: tuple[str, Decimal | None] = (LEDGER, None)
            for name, view in views.items():
                if view.cash is not None and view_updated_at(view) > latest:
                    latest = view_updated_at(view)
                    chosen = (name, view.cash)
            return chosen
        return LEDGER, None

    def _canonical(self, value: Value, votes: Counter[Value]) -> Value:
        """``value``, or an equal-within-tolerance value already voted for."""
        for key in votes:
            if self._same(key, value):
                return key
        return value

    def _same(self, a: Value, b: Value) -> bool:
        if a is None or b is None:
            return a is b
        return a[0] == b[0] and self._same_price(a[1], b[1])

    # -- the record ----------------------------------------------------------------------------
    def alert(self, conflicts: list[Conflict], actions: list[str]) -> tuple[Alert, str]:
        """The alert for ``conflicts`` resolved by ``actions``, and its one-line summary."""
        strategy = self.strategy
        severity = "critical" if strategy == "emergency_reset" else "error"
        kinds = Counter(f"{c.source}:{c.kind}" for c in conflicts)
        summary = ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        return Alert(
            key=f"positions.conflict.{strategy}",
            severity=severity,
            title=f"Position conflicts resolved by {strategy}",
            body=f"{len(conflicts)} conflict(s): {summary}. Actions: "
            + ("; ".join(actions) or "none"),
        ), summary


def view_updated_at(view: SourceView) -> float:
    return view.updated_at


def _value(view: PositionView | None) -> Value:
    return None if view is None else (view.quantity, view.avg_price)


def _fmt(view: PositionView) -> str:
    return f"{view.quantity} @ {view.avg_price}"
