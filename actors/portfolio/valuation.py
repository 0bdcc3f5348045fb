"""Valuation: the open positions valued at mark prices, recomputed only where they changed.

The position actor values its book after every commit (for the snapshot it publishes and
the equity sample it sends the breaker). Doing that from scratch costs a pass of Decimal
arithmetic over every open position per fill; with a hundred positions open that was most
of a fill's cost. A :class:`Position` is immutable (the book replaces it on every change)
and a mark is replaced when a new price arrives, so a symbol whose position and mark are
the same objects as last time keeps last time's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from actors.portfolio.book import ZERO, Position, PositionBook
from actors.portfolio.contract import EquitySample, PortfolioSnapshot, PositionView

__all__ = ["Valuation", "Valuer", "equity_sample", "portfolio_snapshot"]


@dataclass(frozen=True, slots=True)
class Valuation:
    """The open positions at one moment, valued at the marks (a position's average price
    where its symbol has no mark yet)."""

    positions: dict[str, PositionView]
    exposure: dict[str, Decimal]  # |mark * quantity| by symbol
    gross_exposure: Decimal
    market_value: Decimal  # sum of mark * quantity (signed)
    unrealized: Decimal


def equity_sample(book: PositionBook, valued: Valuation) -> EquitySample:
    """What the breaker is told of ``book`` valued so: its equity and exposure (the
    position actor's sample, and a backtest's)."""
    return EquitySample(book.cash + valued.market_value, valued.gross_exposure,
                        valued.exposure)


def portfolio_snapshot(seq: int, starting_cash: Decimal, book: PositionBook,
                       valued: Valuation, marks: dict[str, Decimal]) -> PortfolioSnapshot:
    """``book`` as of ledger event ``seq``, valued so at ``marks`` (copied): the position
    actor's published snapshot, and what a backtest's decisions read."""
    return PortfolioSnapshot(
        seq=seq,
        cash=book.cash,
        starting_cash=starting_cash,
        equity=book.cash + valued.market_value,
        realized_pnl=book.realized_pnl,
        unrealized_pnl=valued.unrealized,
        fees=book.fees,
        gross_exposure=valued.gross_exposure,
        positions=valued.positions,
        exposure_by_symbol=valued.exposure,
        marks=dict(marks),
    )


# position, mark it was valued at, view, value, |value|, unrealised PnL
_Row = tuple[Position, Decimal | None, PositionView, Decimal, Decimal, Decimal]


class Valuer:
    """Owns the per-symbol figures of the last valuation, reused for each symbol whose
    position and mark are unchanged (the same objects)."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    def value(self, positions: dict[str, Position], marks: dict[str, Decimal]) -> Valuation:
        """Value ``positions`` at ``marks``. The sums run in the positions' order, as a
        from-scratch ``sum`` would, so the figures are the same to the last digit."""
        last = self._rows
        rows: dict[str, _Row] = {}
        views: dict[str, PositionView] = {}
        exposure: dict[str, Decimal] = {}
        gross = market = unrealized = ZERO
        for symbol, pos in positions.items():
            mark = marks.get(symbol)
            row = last.get(symbol)
            if row is None or row[0] is not pos or row[1] is not mark:
                price = pos.avg_price if mark is None else mark
                value = price * pos.quantity
                # the view is the position's alone: a new mark keeps it
                view = row[2] if row is not None and row[0] is pos else PositionView(
                    pos.quantity, pos.avg_price, pos.updated_at)
                row = (pos, mark, view, value, abs(value), (price - pos.avg_price) * pos.quantity)
            rows[symbol] = row
            views[symbol] = row[2]
            exposure[symbol] = row[4]
            market += row[3]
            gross += row[4]
            unrealized += row[5]
        self._rows = rows
        return Valuation(views, exposure, gross, market, unrealized)
