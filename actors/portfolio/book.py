"""PositionBook: positions, cash and PnL computed exactly from fills (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from actors.common.messages import Fill, InvalidFill, Side
from supervisor.fast_init import fast_init

__all__ = ["Position", "PositionBook"]

ZERO = Decimal(0)
_BUY = Side.BUY


@fast_init
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
        self._undo: dict[str, Position | None] | None = None  # see checkpoint()

    # -- undo: a batch that fails to reach the disk must leave no trace in memory ------------
    def checkpoint(self) -> tuple[Decimal, Decimal, Decimal]:
        """Start remembering what the next applies change; :meth:`rollback` undoes them.

        Only the positions touched are remembered, so a checkpoint costs the same with ten
        open positions or ten thousand.
        """
        self._undo = {}
        return (self.cash, self.realized_pnl, self.fees)

    def rollback(self, saved: tuple[Decimal, Decimal, Decimal]) -> None:
        """Put back the state at the :meth:`checkpoint` that returned ``saved``."""
        self.cash, self.realized_pnl, self.fees = saved
        for symbol, pos in (self._undo or {}).items():
            if pos is None:
                self.positions.pop(symbol, None)
            else:
                self.positions[symbol] = pos
        self._undo = None
        self.last_realized = ZERO

    def release(self) -> None:
        """Forget the checkpoint: the changes since it are kept."""
        self._undo = None

    def check(self, fill: Fill) -> None:
        """Raise InvalidFill if ``fill`` would oversell (no shorting) or overspend (no margin)."""
        held = self.positions.get(fill.symbol)
        delta = fill.quantity if fill.side is _BUY else -fill.quantity
        self._check(fill, held.quantity if held else ZERO, delta,
                    self.cash - (delta * fill.price + fill.fee))

    def _check(self, fill: Fill, qty: Decimal, delta: Decimal, cash_after: Decimal) -> None:
        if qty + delta < 0 and not self.allow_short:
            raise InvalidFill(
                f"fill {fill.fill_id}: selling {fill.quantity} {fill.symbol} with only {qty} "
                "held and shorting disabled"
            )
        if cash_after < 0:
            raise InvalidFill(
                f"fill {fill.fill_id}: needs {fill.notional + fill.fee} but cash is {self.cash}"
            )

    def apply(self, fill: Fill, *, check: bool = True) -> Position | None:
        """Apply a fill; returns the symbol's position afterwards (None if flat).

        ``check=False`` is for projections that mirror a ledger which already checked it.
        This is the ledger's hot path (once per fill), so each amount is computed once.
        """
        symbol, price, fee, at = fill.symbol, fill.price, fill.fee, fill.at
        delta = fill.quantity if fill.side is _BUY else -fill.quantity
        held = self.positions.get(symbol)
        held_qty = held.quantity if held is not None else ZERO
        undo = self._undo
        if undo is not None and symbol not in undo:
            undo[symbol] = held
        cash_after = self.cash - (delta * price + fee)
        if check and (cash_after < ZERO or (held_qty + delta < ZERO and not self.allow_short)):
            self._check(fill, held_qty, delta, cash_after)
        self.cash = cash_after
        self.fees += fee
        pnl = ZERO
        if held is None or held_qty == ZERO:
            pos = Position(symbol, delta, price, ZERO, at, at)
        elif (held_qty > ZERO) == (delta > ZERO):
            qty = held_qty + delta
            avg = ((held_qty * held.avg_price + delta * price) / qty).quantize(self._quant)
            pos = Position(symbol, qty, avg, held.realized_pnl, held.opened_at, at)
        else:
            closing = min(abs(delta), abs(held_qty))
            pnl = (price - held.avg_price) * closing
            if held_qty < ZERO:
                pnl = -pnl
            self.realized_pnl += pnl
            qty = held_qty + delta
            if qty == ZERO:
                self.last_realized = pnl
                self.positions.pop(symbol, None)
                return None
            if (qty > ZERO) == (held_qty > ZERO):
                pos = Position(symbol, qty, held.avg_price, held.realized_pnl + pnl,
                               held.opened_at, at)
            else:  # crossed through zero: the rest opens at the fill price
                pos = Position(symbol, qty, price, ZERO, at, at)
        self.last_realized = pnl
        self.positions[symbol] = pos
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
