"""Entry sizing by risk: a pure function of the account, the signal and the risk limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from actors.common.messages import Fill
from actors.execution.contract import SkipReason
from actors.portfolio.contract import PortfolioSnapshot

__all__ = ["InFlightBuy", "RiskLimits", "size_entry"]

ZERO = Decimal(0)

_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The executor's risk settings, in percent of equity (cash for the last one)."""

    risk_per_trade_pct: Decimal
    default_stop_pct: Decimal
    max_position_pct: Decimal
    max_exposure_pct: Decimal
    min_notional: Decimal
    in_flight_margin_pct: Decimal
    cash_use: Decimal = Decimal("0.98")  # of cash, leaving room for fees and slippage


@dataclass(frozen=True, slots=True)
class InFlightBuy:
    """A buy order sent and not answered yet: what it may cost."""

    symbol: str
    quantity: Decimal
    price: Decimal  # the price it was sized at


def size_entry(limits: RiskLimits, price: Decimal, stop_distance: float, *,
               snap: PortfolioSnapshot, writing: Iterable[Fill],
               unanswered: Iterable[InFlightBuy]) -> Decimal | SkipReason:
    """The quantity of an entry at ``price``, or why there is none (a skip reason).

    Risk per trade over the stop distance (``stop_distance``, or ``default_stop_pct`` of
    the price when it is 0), capped by position size, total exposure and cash.

    The buy fills in ``writing`` (not in the ledger yet) count as the snapshot will once
    they are in, or worse: cash less their cost and fees; equity less their fees and what
    they paid over the mark; exposure plus each at the higher of its fill price and its
    mark. A buy order not answered yet counts at its price (or the mark, if higher) plus
    ``in_flight_margin_pct``: all of it off cash and onto exposure, the margin off equity.
    """
    equity, cash, gross = snap.equity, snap.cash, snap.gross_exposure
    for fill in writing:
        mark = snap.marks.get(fill.symbol, fill.price)
        cash -= fill.quantity * fill.price + fill.fee
        equity -= fill.fee + max(ZERO, (fill.price - mark) * fill.quantity)
        gross += max(fill.price, mark) * fill.quantity
    margin = 1 + limits.in_flight_margin_pct / 100
    for buy in unanswered:
        mark = snap.marks.get(buy.symbol, buy.price)
        notional = buy.quantity * max(buy.price, mark)
        cost = notional * margin
        cash -= cost
        equity -= cost - notional
        gross += cost
    if price <= 0 or equity <= 0:
        return SkipReason.NO_EQUITY
    stop = Decimal(repr(stop_distance)) if stop_distance > 0 else \
        price * limits.default_stop_pct / 100
    qty = equity * limits.risk_per_trade_pct / 100 / stop
    notional_cap = min(
        equity * limits.max_position_pct / 100,
        equity * limits.max_exposure_pct / 100 - gross,
        cash * limits.cash_use,
    )
    qty = min(qty, notional_cap / price).quantize(_QUANTUM, ROUND_DOWN)
    if qty <= 0 or qty * price < limits.min_notional:
        return SkipReason.BELOW_MINIMUM
    return qty
