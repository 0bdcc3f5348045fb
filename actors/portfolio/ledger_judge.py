"""What is impossible about the ledger's book after a batch: the judgement of the facts.

A venue fill is recorded even when it makes the book impossible; these say why it is.
:func:`book_problems` judges the book as it is now (negative cash, a holding sold below
zero when shorting is not allowed, for the symbols the batch touched);
:func:`venue_order_problem` replays the fills from a late fill's venue time on in venue
order (``at``, then ``seq``) and finds the first impossible step. Plain functions of the
book and the rows given; they write nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from actors.portfolio.book import ZERO, PositionBook
from actors.portfolio.contract import LedgerEvent

__all__ = ["LATE_FILLS_SQL", "book_problems", "impossible_book", "venue_order_problem"]

# the fills at or after a venue time, in venue order (an index on ``at``)
LATE_FILLS_SQL = ("SELECT fill_id, symbol, side, quantity, price, fee, at FROM fills "
                  "WHERE at >= ? ORDER BY at, seq")


def book_problems(book: PositionBook, events: list[LedgerEvent], *,
                  allow_short: bool) -> list[str]:
    """What is impossible about ``book`` now, after ``events`` (not empty) were recorded."""
    found: list[str] = []
    if book.cash < 0:
        found.append(f"cash is {book.cash} after fill {events[-1].fill.fill_id}")
    if not allow_short:
        touched = {e.fill.symbol for e in events}
        found.extend(f"{p.quantity} {s} held after more was sold than held"
                     for s, p in sorted(book.positions.items())
                     if s in touched and p.quantity < 0)
    return found


def impossible_book(problems: Iterable[str]) -> str:
    """Why trading halts on a book the venue's fills made impossible (``problems``: what
    :func:`book_problems` or :func:`venue_order_problem` found)."""
    return (f"the venue's fills make the ledger's book impossible ({'; '.join(problems)}); "
            "recorded as facts; check the venue and the ledger, then `botvisor breaker close`")


def venue_order_problem(book: PositionBook, fills: Iterable[tuple[Any, ...]], *,
                        allow_short: bool) -> str | None:
    """Replay ``fills`` (rows of :data:`LATE_FILLS_SQL`) in their order: the first step
    that is impossible, or None. The state before them is ``book`` now less what they did
    (sums do not depend on order), so only they need be read."""
    rows = [(fid, sym, Decimal(q) if side == "buy" else -Decimal(q), Decimal(pr),
             Decimal(fee), at)
            for fid, sym, side, q, pr, fee, at in fills]
    cash = book.cash + sum((d * pr + fee for _, _, d, pr, fee, _ in rows), ZERO)
    held: dict[str, Decimal] = {}
    for _, sym, d, _, _, _ in rows:
        held[sym] = held.get(sym, ZERO) - d
    for sym in held:
        position = book.positions.get(sym)
        held[sym] += position.quantity if position is not None else ZERO
    for fill_id, symbol, delta, price, fee, at in rows:
        cash -= delta * price + fee
        held[symbol] += delta
        if cash < 0:
            return f"in venue order, cash is {cash} after fill {fill_id} (venue time {at})"
        if held[symbol] < 0 and not allow_short:
            return (f"in venue order, fill {fill_id} (venue time {at}) sells more "
                    f"{symbol} than held")
    return None
