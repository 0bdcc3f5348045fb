"""The ledger's events replayed: the book they give, and the book at chosen seqs.

Owns :func:`replay`, which reads a ledger copy's starting cash, fills and adjustments,
applies them in seq order to a :class:`PositionBook` (an impossible fill, or a damaged
adjustment, is a violation; each exposure-increasing fill goes through the breaker's gate
check) and returns the final book, a snapshot of the book at each wanted seq, and the last
seq. Reads the copy only; writes only to the report.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from actors.common.messages import Fill, InvalidFill, Side
from actors.portfolio.book import PositionBook
from actors.portfolio.positions import PositionActor
from actors.reliability.audit_breaker import Interval, check_gate
from actors.reliability.audit_report import AuditReport

__all__ = ["replay"]


def _snapshot(book: PositionBook) -> PositionBook:
    """A copy of ``book`` that later fills do not change."""
    copy = PositionBook(book.cash, allow_short=book.allow_short)
    copy.positions = dict(book.positions)
    copy.realized_pnl, copy.fees = book.realized_pnl, book.fees
    return copy


def replay(db: sqlite3.Connection, settings: PositionActor.Settings, path: Path,
           intervals: list[Interval] | None, *, wanted: set[int], slack: float,
           probes: int, report: AuditReport) -> tuple[PositionBook, dict[int, PositionBook], int]:
    """Replay the ledger's fills and adjustments in seq order through a PositionBook.

    Returns the final book, the book at each seq in ``wanted``, and the last seq. An
    impossible fill is a violation; an exposure-increasing fill recorded in an OPEN or
    HALTED stretch of the breaker (older than ``slack``) is one too.
    """
    starting = db.execute("SELECT value FROM account WHERE key = 'starting_cash'").fetchone()
    cash = Decimal(starting[0]) if starting is not None else settings.starting_cash
    book = PositionBook(cash, allow_short=settings.allow_short)
    events: list[tuple[int, str, Any]] = [
        (int(r[0]), "fill", r) for r in db.execute(
            "SELECT seq, fill_id, client_order_id, symbol, side, quantity, price, fee, at, "
            "venue, recorded_at FROM fills")]
    events += [(int(r[0]), "adjustment", r) for r in db.execute(
        "SELECT seq, at, symbol, field, new FROM adjustments")]
    events.sort(key=lambda e: e[0])
    at_seq: dict[int, PositionBook] = {}
    if 0 in wanted:
        at_seq[0] = _snapshot(book)
    seq = 0
    for seq, kind, row in events:
        if kind == "fill":
            _, fid, coid, symbol, side, qty, price, fee, at, venue, recorded_at = row
            fill = Fill(fid, coid, symbol, Side(side), Decimal(qty), Decimal(price),
                        Decimal(fee), float(at), venue)
            held = book.positions.get(symbol)
            before = held.quantity if held is not None else Decimal(0)
            delta = fill.quantity if fill.side is Side.BUY else -fill.quantity
            if intervals and abs(before + delta) > abs(before):
                check_gate(fill, float(recorded_at), intervals, slack, path=path,
                           report=report, probes=probes)
            try:
                book.apply(fill)
            except InvalidFill as exc:
                report.violations.append(f"{path}: impossible book at seq {seq}: {exc}")
                book.apply(fill, check=False)
        else:
            _, at, symbol, what, new = row
            try:
                if what == "cash":
                    book.cash = Decimal(new)
                else:
                    value = json.loads(new)
                    book.set_position(symbol, Decimal(value["quantity"]),
                                      Decimal(value["avg_price"]), float(at))
            except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
                report.violations.append(f"{path}: adjustment at seq {seq} is damaged ({exc})")
        if seq in wanted:
            at_seq[seq] = _snapshot(book)
    return book, at_seq, seq
