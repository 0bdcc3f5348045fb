"""How the paper exchange prices a fill, pure: the quantity at the venue's places, the
price the slippage moves against the order, and the fee.

:class:`FillPricing` is built from the paper exchange's settings; the paper exchange
prices every order with it, and a backtest prices its fills with the very same object.
No actor, clock or file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from actors.common.messages import Fill, Side

__all__ = ["FillPricing", "paper_fill"]

_BPS = Decimal(10_000)
_FEE_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class FillPricing:
    """The fee and the slippage (basis points of the notional and of the price) and the
    venue's quantity and price places."""

    fee_bps: Decimal
    slippage_bps: Decimal
    quantity_places: int
    price_places: int
    _quantity_quantum: Decimal = field(init=False, repr=False, compare=False)
    _price_quantum: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_quantity_quantum", Decimal(1).scaleb(-self.quantity_places))
        object.__setattr__(self, "_price_quantum", Decimal(1).scaleb(-self.price_places))

    def quantity(self, quantity: Decimal) -> Decimal:
        """``quantity`` rounded down to the venue's places (0 or less: the order is
        refused)."""
        return quantity.quantize(self._quantity_quantum, ROUND_DOWN)

    def refusal(self, quantity: Decimal) -> str | None:
        """Why the venue refuses an order of ``quantity`` (None: it fills)."""
        if self.quantity(quantity) <= 0:
            return f"quantity must be > 0 at {self.quantity_places} decimals"
        return None

    def fill(self, side: Side, quantity: Decimal, last: Decimal) -> tuple[Decimal, Decimal,
                                                                          Decimal]:
        """``(quantity, price, fee)`` of an order of ``quantity`` filled at the last price
        ``last``: the price moved by the slippage against the order, at the venue's price
        places; the quantity at its places (rounded down); the fee on the notional."""
        slip = self.slippage_bps / _BPS
        price = last * (1 + slip) if side is Side.BUY else last * (1 - slip)
        price = price.quantize(self._price_quantum)
        qty = quantity.quantize(self._quantity_quantum, ROUND_DOWN)
        fee = (qty * price * self.fee_bps / _BPS).quantize(_FEE_QUANTUM)
        return qty, price, fee


def paper_fill(client_order_id: str, symbol: str, side: Side,
               priced: tuple[Decimal, Decimal, Decimal], at: float) -> Fill:
    """The paper exchange's one fill of an order, ``priced`` by :meth:`FillPricing.fill`
    (quantity, price, fee), at ``at``."""
    qty, price, fee = priced
    return Fill(f"{client_order_id}-1", client_order_id, symbol, side, qty, price, fee, at,
                "paper")
