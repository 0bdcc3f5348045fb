"""The executor: turns signals and exit requests into orders, safely.

Before every order it asks the circuit breaker (a lock-free read of the breaker's
published gate). It sizes entries by risk (risk per trade over the stop distance, capped
by position size, total exposure, open positions and cash). Each order carries a client
order id derived from its signal, so the same signal can never place two orders; after a
restart it checks the ledger and the exchange for that id before sending anything. Order
submission is never retried blindly: when a reply is lost it looks the order up by its
client order id. Fills go to the position actor with retries, which the fill id makes safe.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.breaker_gate import OrderIntent, Permission, gate_or_unknown
from actors.breaker_messages import ApiResult, ProbeResult
from actors.messages import Alert, Fill, Side
from actors.pipeline_messages import (
    ExitRequest,
    LookupOrder,
    OrderResult,
    PlaceOrder,
    Signal,
    client_order_id,
)
from actors.position_messages import HasOrder, PortfolioSnapshot, RecordFill
from supervisor import SupervisedActor
from supervisor.errors import RuntimeErrorBase
from supervisor.retry import Retrier

log = logging.getLogger(__name__)

__all__ = ["ExecutorActor", "ExecutorStats", "GetExecutorStats"]


@dataclass(frozen=True, slots=True)
class GetExecutorStats:
    """Ask for ExecutorStats."""


@dataclass(frozen=True, slots=True)
class ExecutorStats:
    """What the executor did: orders sent, refused, skipped, fills recorded."""

    orders: int
    filled: int
    refused: dict[str, int]
    skipped: dict[str, int]
    fills_recorded: int
    unrecorded: int
    sent: tuple[tuple[str, str, bool, str], ...]  # (client order id, side, reduces, state)


class ExecutorActor(SupervisedActor):
    """Owns the orders it has sent in this incarnation and the fills still to record."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        risk_per_trade_pct: Decimal = Field(Decimal("1.0"), gt=0, le=100)
        default_stop_pct: Decimal = Field(Decimal("2.0"), gt=0, le=100)
        max_position_pct: Decimal = Field(Decimal("25"), gt=0, le=100)
        max_exposure_pct: Decimal = Field(Decimal("80"), gt=0)
        max_open_positions: int = Field(4, ge=1)
        min_notional: Decimal = Field(Decimal("10"), ge=0)
        order_timeout: float = Field(5.0, gt=0)
        record_attempts: int = Field(5, ge=1)
        positions: str = "positions"
        breaker: str = "breaker"
        exchange: str = "exchange"
        alerts: str = "alerts"

    def __init__(self, settings: ExecutorActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or ExecutorActor.Settings()
        self.sent: list[tuple[str, str, bool, str]] = []
        self.seen: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.filled = 0
        self.fills_recorded = 0
        self.unrecorded: list[Fill] = []
        self._retrier: Retrier | None = None

    def on_start(self) -> None:
        self._retrier = Retrier(attempts=self.settings.record_attempts, clock=self.ctx.clock)

    def on_receive(self, message: Any) -> Any:
        if self.unrecorded:
            self._record_pending()
        match message:
            case Signal():
                self._on_signal(message)
            case ExitRequest():
                self._on_exit(message)
            case GetExecutorStats():
                return ExecutorStats(len(self.sent), self.filled, dict(self.refused),
                                     dict(self.skipped), self.fills_recorded,
                                     len(self.unrecorded), tuple(self.sent))
            case _:
                return super().on_receive(message)
        return None

    # -- deciding ------------------------------------------------------------------------------
    def _portfolio(self) -> PortfolioSnapshot | None:
        snap = self.ctx.peek(self.settings.positions)
        return snap if isinstance(snap, PortfolioSnapshot) else None

    def _skip(self, why: str) -> None:
        self.skipped[why] += 1

    def _on_signal(self, signal: Signal) -> None:
        snap = self._portfolio()
        if snap is None:
            self._skip("no portfolio yet")
            return
        held = snap.positions.get(signal.symbol)
        if signal.side is Side.SELL:
            if held is None or held.quantity <= 0:
                self._skip("sell signal without a position")
                return
            self._order(signal.signal_id, signal.symbol, Side.SELL, held.quantity, reduces=True)
            return
        if held is not None:
            self._skip("already holding")
            return
        if len(snap.positions) >= self.settings.max_open_positions:
            self._skip("max open positions")
            return
        qty = self._size(signal, snap)
        if qty is None:
            return
        self._order(signal.signal_id, signal.symbol, Side.BUY, qty, reduces=False)

    def _on_exit(self, request: ExitRequest) -> None:
        snap = self._portfolio()
        held = snap.positions.get(request.symbol) if snap is not None else None
        if held is None or held.quantity <= 0:
            self._skip("exit without a position")
            return
        self._order(request.signal_id, request.symbol, Side.SELL, held.quantity, reduces=True)

    def _size(self, signal: Signal, snap: PortfolioSnapshot) -> Decimal | None:
        s = self.settings
        price = Decimal(repr(signal.price))
        if price <= 0 or snap.equity <= 0:
            self._skip("no equity")
            return None
        stop = Decimal(repr(signal.stop_distance)) if signal.stop_distance > 0 else \
            price * s.default_stop_pct / 100
        qty = snap.equity * s.risk_per_trade_pct / 100 / stop
        notional_cap = min(
            snap.equity * s.max_position_pct / 100,
            snap.equity * s.max_exposure_pct / 100 - snap.gross_exposure,
            snap.cash * Decimal("0.98"),
        )
        qty = min(qty, notional_cap / price).quantize(Decimal("0.00000001"), ROUND_DOWN)
        if qty <= 0 or qty * price < s.min_notional:
            self._skip("below minimum size or no headroom")
            return None
        return qty

    # -- sending -------------------------------------------------------------------------------
    def _order(self, signal_id: str, symbol: str, side: Side, qty: Decimal, *,
               reduces: bool) -> None:
        s = self.settings
        permission: Permission = gate_or_unknown(self.ctx.peek(s.breaker)).check(
            OrderIntent(symbol, reduces_exposure=reduces))
        if not permission.allowed:
            self.refused[permission.state.value] += 1
            return
        coid = client_order_id(signal_id)
        if coid in self.seen:
            self._skip("signal already handled")
            return
        self.seen.add(coid)
        if self._known(coid):
            return
        order = PlaceOrder(coid, symbol, side, qty, reduce_only=reduces)
        self.sent.append((coid, side.value, reduces, permission.state.value))
        result = self._submit(order)
        ok = result is not None and result.status == "filled"
        self.ctx.try_tell(s.breaker, ApiResult(ok, "place_order"))
        if permission.probe:
            self.ctx.try_tell(s.breaker, ProbeResult(ok, result.reason if result else "no reply"))
        if result is None:
            return
        if not ok:
            log.warning("order %s for %s rejected: %s", coid, symbol, result.reason)
            return
        self.filled += 1
        for fill in result.fills:
            self._record(fill)

    def _known(self, coid: str) -> bool:
        """After a restart: is this order already in the ledger, or at the exchange?"""
        s = self.settings
        try:
            if self.ctx.ask(s.positions, HasOrder(coid), timeout=s.order_timeout):
                self._skip("already in the ledger")
                return True
            found = self.ctx.ask(s.exchange, LookupOrder(coid), timeout=s.order_timeout)
        except RuntimeErrorBase as exc:
            self._skip(f"could not check for duplicates: {type(exc).__name__}")
            return True  # unsure: never risk a duplicate order
        if isinstance(found, OrderResult):
            self._skip("already at the exchange")
            for fill in found.fills:
                self._record(fill)
            return True
        return False

    def _submit(self, order: PlaceOrder) -> OrderResult | None:
        s = self.settings
        try:
            result = self.ctx.ask(s.exchange, order, timeout=s.order_timeout)
            return result if isinstance(result, OrderResult) else None
        except RuntimeErrorBase as exc:
            log.warning("no reply to order %s (%s); looking it up", order.client_order_id, exc)
        try:  # never resubmit blindly: ask what happened to this client order id
            found = self.ctx.ask(s.exchange, LookupOrder(order.client_order_id),
                                 timeout=s.order_timeout)
        except RuntimeErrorBase:
            found = None
        return found if isinstance(found, OrderResult) else None

    # -- recording fills -----------------------------------------------------------------------
    def _record(self, fill: Fill) -> None:
        assert self._retrier is not None
        try:
            self._retrier.call(self.ctx.ask, self.settings.positions, RecordFill(fill),
                               timeout=self.settings.order_timeout)
            self.fills_recorded += 1
        except Exception as exc:
            self.unrecorded.append(fill)
            log.error("fill %s not recorded yet (%s); will retry", fill.fill_id, exc)
            self.ctx.try_tell(self.settings.alerts, Alert(
                "executor.fill_unrecorded", "critical", "A fill could not be recorded yet",
                f"{fill.fill_id} {fill.side.value} {fill.quantity} {fill.symbol}: {exc}"))

    def _record_pending(self) -> None:
        pending, self.unrecorded = self.unrecorded, []
        for fill in pending:
            self._record(fill)
