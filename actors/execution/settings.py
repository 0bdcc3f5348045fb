"""The executor's settings (``ExecutorActor.Settings``): risk limits, timeouts and retries,
the venue sync, and the peers it talks to. Validated once, frozen; every piece of the
execution package reads its own few fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.common.messages import Alert, HaltTrading
from actors.execution.decide import Limits
from actors.execution.sizing import RiskLimits
from actors.portfolio.contract import (
    GetLedgerSummary,
    HasOrder,
    PortfolioSnapshot,
    RecordFill,
    RecordFills,
)
from actors.risk.contract import ApiResult, BreakerGate, ProbeResult
from actors.venues.contract import GetOpenOrders, LookupOrder, PlaceOrder
from supervisor.peers import Peer

__all__ = ["Settings"]


class Settings(BaseModel):
    """The executor's settings (config.yaml: the executor's ``settings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    risk_per_trade_pct: Decimal = Field(Decimal("1.0"), gt=0, le=100)
    default_stop_pct: Decimal = Field(Decimal("2.0"), gt=0, le=100)
    max_position_pct: Decimal = Field(Decimal("25"), gt=0, le=100)
    max_exposure_pct: Decimal = Field(Decimal("80"), gt=0)
    max_open_positions: int = Field(4, ge=1)
    min_notional: Decimal = Field(Decimal("10"), ge=0)
    # A buy sent to the exchange and not answered yet counts against cash, equity and
    # exposure at its signal's price (or the mark, if higher) plus this much (fees,
    # slippage, the price's move until it fills), so the next entry need not wait for
    # its reply.
    in_flight_margin_pct: Decimal = Field(Decimal("1.0"), ge=0, le=100)
    # True: a signal or exit is decided only once no order and no fill is out, so that each
    # decision sees every earlier fill in the ledger, as a backtest's does (a lockstep
    # replay's parity needs it: docs/backtesting.md, "Parity with the live tree")
    serial: bool = False
    order_timeout: float = Field(5.0, gt=0)  # seconds for any answer (then: look up)
    record_attempts: int = Field(5, ge=1)  # tries before an unrecorded fill is alerted
    retry_initial: float = Field(0.2, gt=0)  # seconds before the 1st retry (doubles)
    retry_max: float = Field(2.0, gt=0)  # seconds between retries, at most
    max_held: int = Field(1000, ge=1)  # signals held at once; more are skipped
    open_alert_after: float = Field(60.0, gt=0)  # s an order may stay open unalerted
    venue_sync: Literal["recent", "full", "off"] = "recent"
    venue_sync_lookback: float = Field(86400.0, ge=0)  # venue seconds before the newest
    venue_sync_batch: int = Field(1000, ge=1)  # fills per RecordFills
    venue_sync_retry: float = Field(1.0, gt=0)  # seconds between failed syncs
    duplicate_check_margin: float = Field(3600.0, ge=0)  # venue s, see docs/trading-bot.md
    positions: Annotated[str, Peer(accepts=(HasOrder, RecordFill, RecordFills,
                                            GetLedgerSummary),
                                   publishes=PortfolioSnapshot)] = "positions"
    breaker: Annotated[str, Peer(accepts=(ApiResult, ProbeResult, HaltTrading),
                                 publishes=BreakerGate)] = "breaker"
    exchange: Annotated[str, Peer(accepts=(PlaceOrder, LookupOrder,
                                           GetOpenOrders))] = "exchange"
    alerts: Annotated[str, Peer(accepts=(Alert,))] = "alerts"

    def limits(self) -> Limits:
        """The decision's limits (sizing, open positions)."""
        return Limits(RiskLimits(self.risk_per_trade_pct, self.default_stop_pct,
                                 self.max_position_pct, self.max_exposure_pct,
                                 self.min_notional, self.in_flight_margin_pct),
                      self.max_open_positions)
