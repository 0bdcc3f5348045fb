"""PositionBook: positions, cash and PnL computed exactly from fills (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from actors.messages import Fill, InvalidFill

__all__ = ["Position", "PositionBook"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Position:
    """An open position: signed quantity (short < 0), average entry price, its realised PnL."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal = ZERO
    opened_at: float = 0.0
    updated_at: float = 0.0

    @property
    def cost(self) -> Decimal:
        return self.quantity * self.avg_price


class PositionBook:
    """Owns the in-memory projection of the ledger: open positions, cash, realised PnL, fees.

    Average-cost accounting: adding to a position moves its average price; reducing it
    realises ``(exit - avg) * qty`` (reversed for shorts); crossing zero closes and opens
    the rest at the fill price. Cash moves by the notional and the fee. Amounts are Decimal;
    a position's average price is kept to ``price_places`` decimals (rounded half-even).
    """

    def __init__(self, cash: Decimal, *, allow_short: bool = False, price_places: int = 12):
        self.cash = cash
        self.allow_short = allow_short
        self.realized_pnl = ZERO
        self.fees = ZERO
        self.positions: dict[str, Position] = {}
        self.last_realized = ZERO  # realised PnL of the last fill applied
        self._quant = Decimal(1).scaleb(-price_places)

    def check(self, fill: Fill) -> None:
        """Raise InvalidFill if ``fill`` would oversell (no shorting) or overspend (no margin)."""
        held = self.positions.get(fill.symbol)
        qty = held.quantity if held else ZERO
        new_qty = qty + fill.signed_quantity
        if new_qty < 0 and not self.allow_short:
            raise InvalidFill(
                f"fill {fill.fill_id}: selling {fill.quantity} {fill.symbol} with only {qty} "
                "held and shorting disabled"
            )
        cash_after = self.cash - fill.signed_quantity * fill.price - fill.fee
        if cash_after < 0:
            raise InvalidFill(
                f"fill {fill.fill_id}: needs {fill.notional + fill.fee} but cash is {self.cash}"
            )

    def apply(self, fill: Fill, *, check: bool = True) -> Position | None:
        """Apply a fill; returns the symbol's position afterwards (None if flat).

        ``check=False`` is for projections that mirror a ledger which already checked it.
        """
        if check:
            self.check(fill)
        delta = fill.signed_quantity
        self.cash -= delta * fill.price + fill.fee
        self.fees += fill.fee
        self.last_realized = ZERO
        held = self.positions.get(fill.symbol)
        if held is None or held.quantity == 0:
            pos = Position(fill.symbol, delta, fill.price, ZERO, fill.at, fill.at)
        elif (held.quantity > 0) == (delta > 0):
            qty = held.quantity + delta
            avg = ((held.cost + delta * fill.price) / qty).quantize(self._quant)
            pos = Position(fill.symbol, qty, avg, held.realized_pnl, held.opened_at, fill.at)
        else:
            closing = min(abs(delta), abs(held.quantity))
            direction = 1 if held.quantity > 0 else -1
            pnl = (fill.price - held.avg_price) * closing * direction
            self.realized_pnl += pnl
            self.last_realized = pnl
            qty = held.quantity + delta
            if qty == 0:
                pos = replace(held, quantity=ZERO, realized_pnl=held.realized_pnl + pnl,
                              updated_at=fill.at)
            elif (qty > 0) == (held.quantity > 0):
                pos = replace(held, quantity=qty, realized_pnl=held.realized_pnl + pnl,
                              updated_at=fill.at)
            else:  # crossed through zero: the rest opens at the fill price
                pos = Position(fill.symbol, qty, fill.price, ZERO, fill.at, fill.at)
        if pos.quantity == 0:
            self.positions.pop(fill.symbol, None)
            return None
        self.positions[fill.symbol] = pos
        return pos

    def set_position(self, symbol: str, quantity: Decimal, avg_price: Decimal, at: float) -> None:
        """Overwrite a position (conflict resolution adjustments); cash is unchanged."""
        if quantity == 0:
            self.positions.pop(symbol, None)
            return
        old = self.positions.get(symbol)
        self.positions[symbol] = Position(
            symbol, quantity, avg_price, old.realized_pnl if old else ZERO,
            old.opened_at if old else at, at,
        )

    def unrealized(self, marks: dict[str, Decimal]) -> Decimal:
        return sum(
            ((marks.get(p.symbol, p.avg_price) - p.avg_price) * p.quantity
             for p in self.positions.values()),
            ZERO,
        )

    def market_value(self, marks: dict[str, Decimal]) -> Decimal:
        return sum(
            (marks.get(p.symbol, p.avg_price) * p.quantity for p in self.positions.values()),
            ZERO,
        )

    def gross_exposure(self, marks: dict[str, Decimal]) -> Decimal:
        return sum(
            (abs(marks.get(p.symbol, p.avg_price) * p.quantity) for p in self.positions.values()),
            ZERO,
        )

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        return self.cash + self.market_value(marks)
