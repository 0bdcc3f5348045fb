"""The ledger's rows and the values they hold: a fill read back, a position as JSON.

Owns :data:`SIDE_TEXT` (a side as the text the ``fills`` table stores),
:func:`fill_of_row` (a ``fills`` row, from ``fill_id`` to ``venue``, as a
:class:`~actors.common.messages.Fill`) and :func:`position_json` (a position's quantity and
average price as an adjustment records them). Amounts are decimal text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.common.messages import Fill, Side
from actors.portfolio.book import Position

__all__ = ["SIDE_TEXT", "fill_of_row", "position_json"]

SIDE_TEXT = {side: side.value for side in Side}  # plain str: SQLite binds it directly


def fill_of_row(row: tuple[Any, ...]) -> Fill:
    """The fill of a row ``(fill_id, client_order_id, symbol, side, quantity, price, fee,
    at, venue)``."""
    fill_id, coid, symbol, side, qty, price, fee, at, venue = row
    return Fill(fill_id, coid, symbol, Side(side), Decimal(qty), Decimal(price), Decimal(fee),
                at, venue)


def position_json(pos: Position | None) -> dict[str, str] | None:
    """``pos`` as an adjustment's old value records it (None: there was no position)."""
    if pos is None:
        return None
    return {"quantity": str(pos.quantity), "avg_price": str(pos.avg_price)}
