"""The book as ``botvisor positions`` receives it from the position actor: balances, PnL,
equity and the open positions, as JSON data with every amount an exact decimal string
(the command's rendering is :mod:`actors.portfolio.operator`)."""

from __future__ import annotations

from typing import Any

from actors.portfolio.book import ZERO
from actors.portfolio.contract import PortfolioSnapshot

__all__ = ["positions_reply"]


def positions_reply(command: str, snap: PortfolioSnapshot) -> dict[str, Any]:
    """The reply to the operator's ``command`` (``show`` or ``status``) from ``snap``; any
    other command: an error naming it, with code 2."""
    if command not in ("show", "status"):
        return {"error": f"positions: unknown command {command!r} (show)", "code": 2}
    rows = []
    for symbol, view in sorted(snap.positions.items()):
        mark = snap.marks.get(symbol)
        rows.append({
            "symbol": symbol, "quantity": str(view.quantity),
            "avg_price": str(view.avg_price),
            "mark": str(mark) if mark is not None else None,
            "exposure": str(snap.exposure_by_symbol.get(symbol, ZERO)),
            "unrealized_pnl": (str((mark - view.avg_price) * view.quantity)
                               if mark is not None else None),
            "updated_at": view.updated_at,
        })
    return {
        "seq": snap.seq, "starting_cash": str(snap.starting_cash), "cash": str(snap.cash),
        "equity": str(snap.equity), "realized_pnl": str(snap.realized_pnl),
        "unrealized_pnl": str(snap.unrealized_pnl), "fees": str(snap.fees),
        "gross_exposure": str(snap.gross_exposure), "positions": rows,
    }
