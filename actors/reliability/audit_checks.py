"""The audit's checks of one run's records against each other.

Owns :func:`check_exchange` (the paper exchange's orders: unique client order ids, a
status that agrees with its fills), :func:`compare_fills` (exchange fills against ledger
fills, exactly once each and equal), :func:`check_ledger_tables` (the ledger's position and
account tables against the replay of its events) and :func:`check_sources` (each source
against the replayed ledger at its last seq, by the position actor's own reconciler).
Each check writes what it finds to the report and changes nothing else.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from actors.portfolio.book import Position, PositionBook
from actors.portfolio.contract import PositionView, SourceView
from actors.portfolio.ledger import Ledger
from actors.portfolio.positions import PositionActor
from actors.portfolio.reconcile import LedgerState, Reconciler
from actors.portfolio.sources import SourceActor, SourceState
from actors.reliability.audit_report import AuditReport

__all__ = ["check_exchange", "check_ledger_tables", "check_sources", "compare_fills"]


def check_exchange(db: sqlite3.Connection, path: Path, report: AuditReport) -> None:
    """The exchange's orders: each client order id once, filled exactly when it has fills."""
    orders = db.execute("SELECT client_order_id, status FROM orders").fetchall()
    report.orders_checked = len(orders)
    for coid, n in Counter(c for c, _ in orders).items():
        if n > 1:
            report.violations.append(f"{path}: client order id {coid} is used by {n} orders")
    status = dict(orders)
    per_order = Counter(r[1] for r in db.execute("SELECT fill_id, client_order_id FROM fills"))
    for coid, n in per_order.items():
        if status.get(coid) != "filled":
            report.violations.append(f"{path}: order {coid} has {n} fill(s) but its status is "
                                     f"{status.get(coid, 'no order row')!r}")
    for coid, st in status.items():
        if st == "filled" and coid not in per_order:
            report.violations.append(f"{path}: order {coid} is 'filled' with no fill")


def compare_fills(venue: list[tuple[Any, ...]], ledger: list[tuple[Any, ...]],
                  exchange_path: Path, ledger_path: Path, report: AuditReport) -> None:
    """Every exchange fill in the ledger once and equal, and no ledger fill of its own."""
    for fid, n in Counter(f[0] for f in ledger).items():
        if n > 1:
            report.violations.append(f"{ledger_path}: fill {fid} is recorded {n} times")
    for fid, n in Counter(f[0] for f in venue).items():
        if n > 1:
            report.violations.append(f"{exchange_path}: fill {fid} appears {n} times")
    mine = {f[0]: f for f in ledger}
    theirs = {f[0]: f for f in venue}
    for f in venue:
        got = mine.get(f[0])
        if got is None:
            report.violations.append(f"{ledger_path}: lacks exchange fill {f[0]} "
                                     f"(order {f[1]}, {f[3]} {f[4]} {f[2]})")
        elif _norm(got) != _norm(f):
            report.violations.append(f"{ledger_path}: fill {f[0]} (order {f[1]}) differs "
                                     f"from {exchange_path}: {got[1:]} vs {f[1:]}")
    for f in ledger:
        if f[0] not in theirs:
            report.violations.append(f"{ledger_path}: fill {f[0]} (order {f[1]}) was never "
                                     f"made by the exchange ({exchange_path})")


def _norm(f: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return (f[1], f[2], f[3], Decimal(f[4]), Decimal(f[5]), Decimal(f[6]), f[7])
    except InvalidOperation:
        return f


def check_ledger_tables(ledger: Ledger, replayed: PositionBook, path: Path,
                        report: AuditReport) -> None:
    """The ledger's position and account tables (read by the Ledger itself) against the
    replay of its events, and the book's possibility."""
    book = ledger.book
    if book.cash != replayed.cash:
        report.violations.append(f"{path}: account cash {book.cash} but its events give "
                                 f"{replayed.cash}")
    if book.cash < 0:
        report.violations.append(f"{path}: negative cash {book.cash}")
    for symbol in sorted(set(book.positions) | set(replayed.positions)):
        a, b = book.positions.get(symbol), replayed.positions.get(symbol)
        if _qty(a) != _qty(b):
            report.violations.append(f"{path}: position {symbol} is {_qty(a)} but its events "
                                     f"give {_qty(b)}")
        if a is not None and a.quantity < 0 and not ledger.allow_short:
            report.violations.append(f"{path}: negative holding {a.quantity} {symbol}")


def _qty(p: Position | None) -> Decimal:
    return p.quantity if p is not None else Decimal(0)


def _view(name: str, cls: type[SourceActor], state: SourceState) -> SourceView:
    book = state.book
    return SourceView(
        source=name, last_seq=state.last_seq,
        positions={s: PositionView(p.quantity, p.avg_price, p.updated_at)
                   for s, p in book.positions.items()},
        cash=book.cash if cls.keeps_cash else None, updated_at=state.updated_at)


def check_sources(states: dict[str, tuple[type[SourceActor], SourceState, Path]],
                  at_seq: dict[int, PositionBook], last: int,
                  settings: PositionActor.Settings, report: AuditReport) -> None:
    """Each source's state against the ledger's book at the source's last seq."""
    for name, (cls, state, path) in states.items():
        report.sources_checked += 1
        if state.last_seq > last:
            report.violations.append(f"{path}: source {name} is at seq {state.last_seq}, "
                                     f"ahead of the ledger ({last})")
            continue
        book = at_seq.get(state.last_seq)
        if book is None:
            report.violations.append(f"{path}: source {name} is at seq {state.last_seq}, "
                                     "which the ledger never had")
            continue
        ledger_at = LedgerState(state.last_seq, book.cash, {
            s: PositionView(p.quantity, p.avg_price, p.updated_at)
            for s, p in book.positions.items()})
        reconciler = Reconciler(settings.conflict_strategy, settings.price_tolerance)
        for c in reconciler.detect(name, _view(name, cls, state), ledger_at):
            report.violations.append(
                f"{path}: source {name} disagrees with the ledger at seq {state.last_seq}: "
                f"{c.kind} {c.symbol or ''} ledger={c.ledger_value} source={c.source_value}")
        if state.last_seq < last:
            report.notes.append(f"{path}: source {name} lags the ledger by "
                                f"{last - state.last_seq} event(s) (caught up at next start)")
