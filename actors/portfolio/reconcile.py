"""Reconciliation: compare every source with the ledger, resolve conflicts, keep the record.

Conflict kinds: ``missing`` (the ledger has a position the source lacks), ``phantom``
(the source has a position the ledger lacks), ``quantity``, ``price`` (average price off by
more than the tolerance), ``balance`` (cash), ``stale`` (the source has not applied every
ledger event).

Strategies, for each conflicting symbol (and for cash):

* ``trade_manager_priority``: the trade manager's value wins. If it differs from the
  ledger, the ledger records an adjustment to it; every other source is then reset to the
  ledger. Where the trade manager is unavailable or keeps no such value, the ledger wins.
* ``paper_wallet_priority``: the same, with the paper wallet (which also keeps cash).
* ``merge``: a vote among the ledger and every available source (an absent position counts
  as a vote for "flat"); the value with the most votes wins, a tie goes to the ledger.
* ``most_recent``: the value last written wins: each store's time of its last change to
  that symbol (for an absent symbol, the store's time of its last change at all).
* ``emergency_reset``: the ledger wins everything; trading is halted through the breaker
  and a critical alert is sent.

After the winner is applied to the ledger, every source that still differs from it is
reset to the ledger's state. Each conflict is persisted (bounded by
``max_conflict_history``) and alerted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from actors.common.messages import Alert, HaltTrading
from actors.portfolio.contract import GetView, PositionView, SourceView
from supervisor.errors import RuntimeErrorBase

if TYPE_CHECKING:
    from actors.portfolio.positions import PositionActor

log = logging.getLogger(__name__)

__all__ = ["Conflict", "ReconcileReport", "Reconciler"]

LEDGER = "ledger"
PRIORITY_SOURCE = {
    "trade_manager_priority": "trade_manager",
    "paper_wallet_priority": "paper_wallet",
}


@dataclass(frozen=True, slots=True)
class Conflict:
    """One disagreement between a source and the ledger."""

    source: str
    kind: str
    symbol: str | None
    ledger_value: str | None
    source_value: str | None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconciliation found and did."""

    reason: str
    seq: int
    checked: tuple[str, ...]
    unavailable: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    actions: tuple[str, ...]
    strategy: str

    @property
    def clean(self) -> bool:
        return not self.conflicts


Value = tuple[Decimal, Decimal] | None  # (quantity, avg price), None when flat


class Reconciler:
    """Owns the comparison and resolution rules; runs inside the position actor's thread."""

    def __init__(self, actor: PositionActor, settings: PositionActor.Settings) -> None:
        self.actor = actor
        self.settings = settings
        self.runs = 0

    # -- the run -------------------------------------------------------------------------------
    def run(self, reason: str) -> ReconcileReport:
        self.runs += 1
        actor, ledger = self.actor, self.actor.ledger
        views: dict[str, SourceView] = {}
        unavailable: list[str] = []
        for source in self.settings.sources:
            try:
                view = actor.ctx.ask(source, GetView(), timeout=5.0)
            except RuntimeErrorBase as exc:
                unavailable.append(source)
                log.debug("reconcile: %s unavailable: %s", source, exc)
                continue
            views[source] = view
        conflicts = [c for src, view in views.items() for c in self._detect(src, view)]
        strategy = self.settings.conflict_strategy
        actions: list[str] = []
        if conflicts:
            actions = self._resolve(strategy, views)
            self._record(conflicts, strategy, actions, reason)
        return ReconcileReport(
            reason, ledger.seq, tuple(views), tuple(unavailable), tuple(conflicts),
            tuple(actions), strategy,
        )

    # -- detection -----------------------------------------------------------------------------
    def _ledger_views(self) -> dict[str, PositionView]:
        return {
            s: PositionView(p.quantity, p.avg_price, p.updated_at)
            for s, p in self.actor.ledger.book.positions.items()
        }

    def _same_price(self, a: Decimal, b: Decimal) -> bool:
        if a == b:
            return True
        scale = max(abs(a), abs(b))
        return abs(a - b) <= scale * self.settings.price_tolerance

    def _detect(self, source: str, view: SourceView) -> list[Conflict]:
        ledger = self.actor.ledger
        mine = self._ledger_views()
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
        if view.cash is not None and view.cash != ledger.book.cash:
            found.append(Conflict(source, "balance", None, str(ledger.book.cash), str(view.cash)))
        return found

    # -- resolution ----------------------------------------------------------------------------
    def _resolve(self, strategy: str, views: dict[str, SourceView]) -> list[str]:
        actor, ledger = self.actor, self.actor.ledger
        now = actor.ctx.clock.wall()
        actions: list[str] = []
        if strategy == "emergency_reset":
            actor.ctx.try_tell(
                self.settings.breaker,
                HaltTrading("emergency reset of the ledger's sources", by="positions"),
            )
            actions.append("halted trading through the breaker")
        else:
            mine = self._ledger_views()
            symbols = sorted(set(mine).union(*(v.positions for v in views.values())))
            for symbol in symbols:
                winner, value = self._winner(strategy, symbol, mine, views)
                current = _value(mine.get(symbol))
                if winner != LEDGER and not self._same(value, current):
                    qty, avg = value if value is not None else (Decimal(0), Decimal(0))
                    ledger.adjust_position(symbol, qty, avg, f"{strategy}: {winner} wins", now)
                    actions.append(f"ledger {symbol} set to {_fmt_value(value)} from {winner}")
            cash_winner, cash = self._cash_winner(strategy, views)
            if cash_winner != LEDGER and cash is not None and cash != ledger.book.cash:
                ledger.adjust_cash(cash, f"{strategy}: {cash_winner} wins", now)
                actions.append(f"ledger cash set to {cash} from {cash_winner}")
        state = actor.ledger_state(f"reconciliation ({strategy})")
        for source, view in views.items():
            if self._detect(source, view):
                actor.ctx.try_tell(source, state)
                actions.append(f"reset {source} to the ledger")
        return actions

    def _winner(
        self, strategy: str, symbol: str, mine: dict[str, PositionView],
        views: dict[str, SourceView],
    ) -> tuple[str, Value]:
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
            best_time = led.updated_at if led else self.actor.ledger.changed_at
            for name, view in views.items():
                pos = view.positions.get(symbol)
                when = pos.updated_at if pos else view_updated_at(view)
                if when > best_time:
                    best_name, best_val, best_time = name, _value(pos), when
            return best_name, best_val
        return LEDGER, ledger_value

    def _cash_winner(
        self, strategy: str, views: dict[str, SourceView]
    ) -> tuple[str, Decimal | None]:
        cash_views = {n: v.cash for n, v in views.items() if v.cash is not None}
        if strategy in PRIORITY_SOURCE:
            source = PRIORITY_SOURCE[strategy]
            if source in cash_views:
                return source, cash_views[source]
        if strategy == "merge":
            votes = Counter([self.actor.ledger.book.cash, *cash_views.values()])
            best = max(votes.values())
            if votes[self.actor.ledger.book.cash] == best:
                return LEDGER, None
            value = next(v for v, n in votes.items() if n == best)
            name = next(n for n, v in cash_views.items() if v == value)
            return name, value
        if strategy == "most_recent":
            latest = self.actor.ledger.changed_at
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
    def _record(
        self, conflicts: list[Conflict], strategy: str, actions: list[str], reason: str
    ) -> None:
        actor = self.actor
        now = actor.ctx.clock.wall()
        for conflict in conflicts:
            record: dict[str, Any] = asdict(conflict)
            record.update(strategy=strategy, actions=actions, reason=reason, at=now)
            actor.ledger.save_conflict(record, now, self.settings.max_conflict_history)
        severity = "critical" if strategy == "emergency_reset" else "error"
        kinds = Counter(f"{c.source}:{c.kind}" for c in conflicts)
        summary = ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        actor.ctx.try_tell(
            self.settings.alerts,
            Alert(
                key=f"positions.conflict.{strategy}",
                severity=severity,
                title=f"Position conflicts resolved by {strategy}",
                body=f"{len(conflicts)} conflict(s): {summary}. Actions: "
                + ("; ".join(actions) or "none"),
            ),
        )
        log.warning("reconciliation (%s) found %s; %s", reason, summary, "; ".join(actions))


def view_updated_at(view: SourceView) -> float:
    return view.updated_at


def _value(view: PositionView | None) -> Value:
    return None if view is None else (view.quantity, view.avg_price)


def _fmt(view: PositionView) -> str:
    return f"{view.quantity} @ {view.avg_price}"


def _fmt_value(value: Value) -> str:
    return "flat" if value is None else f"{value[0]} @ {value[1]}"
