"""The position actor: the single writer of position state.

It publishes a PortfolioSnapshot after every commit (and, throttled, on new prices) so
the executor and exits read positions without a message.

Every write (a fill, a correction) goes through this actor's mailbox, so no lock is needed.
It owns the SQLite ledger of record. Fills are group-committed: the fills waiting in the
mailbox are written in one transaction, and each sender's reply is sent only after that
commit, so an acknowledged fill survives ``kill -9``. Fills are deduplicated by fill id.
Queries are answered from memory, after any staged fills are committed.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Literal

import pykka
from pydantic import BaseModel, ConfigDict, Field

from actors.book import ZERO
from actors.breaker_messages import EquitySample, TradeClosed
from actors.ledger import Ledger, Rejected
from actors.messages import Fill, FillRecorded, InvalidFill, MarkPrice
from actors.position_messages import (
    GetPortfolio,
    GetTrades,
    HasOrder,
    PortfolioSnapshot,
    PositionView,
    Reconcile,
    RecordFill,
    ResetTo,
    SourceEvents,
    SourceHello,
)
from actors.reconcile import Reconciler, ReconcileReport
from supervisor import SupervisedActor

log = logging.getLogger(__name__)

__all__ = ["PositionActor"]

Strategy = Literal[
    "trade_manager_priority", "paper_wallet_priority", "merge", "most_recent", "emergency_reset"
]


class PositionActor(SupervisedActor):
    """Owns the ledger (SQLite), the in-memory book that mirrors it, and the mark prices."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        database: str = "state/ledger.db"
        starting_cash: Decimal = Field(Decimal("10000"), ge=0)
        allow_short: bool = False
        max_batch: int = Field(1024, ge=1)
        sources: tuple[str, ...] = ("trade_manager", "paper_wallet", "positions_log")
        reconcile_interval: float = Field(5.0, gt=0)
        conflict_strategy: Strategy = "merge"
        max_conflict_history: int = Field(100, ge=1)
        price_tolerance: Decimal = Field(Decimal("0.000001"), ge=0)
        breaker: str = "breaker"
        alerts: str = "alerts"
        equity_interval: float = Field(1.0, gt=0)  # at most one equity sample per interval

    def __init__(self, settings: PositionActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or PositionActor.Settings()
        self.ledger = Ledger(
            self.settings.database,
            starting_cash=self.settings.starting_cash,
            allow_short=self.settings.allow_short,
        )
        self._staged: list[tuple[Fill, pykka.Future[Any] | None]] = []
        self.marks: dict[str, Decimal] = {}
        self.commits = 0
        self._reconciler: Reconciler | None = None
        self._last_sample = float("-inf")

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        self.ledger.open()
        self._reconciler = Reconciler(self, self.settings)
        log.info(
            "ledger %s open at seq %d: %d open positions, cash %s",
            self.settings.database, self.ledger.seq, len(self.ledger.book.positions),
            self.ledger.book.cash,
        )
        self.ctx.schedule(self.settings.reconcile_interval, Reconcile("timer"))
        self.ctx.publish(self.snapshot())

    def on_stop(self) -> None:
        self._commit()
        self.ledger.close()

    def on_failure(self, *exc_info: Any) -> None:
        err = RuntimeError("position actor failed before this fill was committed; resend it")
        for _, reply in self._staged:
            if reply is not None:
                reply.set_exception(exc_info=(type(err), err, None))
        self._staged.clear()
        self.ledger.close()

    # -- messages ----------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RecordFill):
            self._staged.append((message.fill, self.defer_reply()))
            if self.ctx.pending() == 0 or len(self._staged) >= self.settings.max_batch:
                self._commit()
            return None
        if isinstance(message, MarkPrice):
            self.marks[message.symbol] = message.price
            if self.ctx.clock.now() - self._last_sample >= self.settings.equity_interval:
                self._send_equity()
                self.ctx.publish(self.snapshot())
            return None
        self._commit()  # everything else sees only committed state
        match message:
            case GetPortfolio():
                return self.snapshot()
            case GetTrades(limit):
                return self.ledger.trades(limit)
            case HasOrder(coid):
                return self.ledger.has_order(coid)
            case SourceHello(source, last_seq):
                self._replay(source, last_seq)
                return None
            case Reconcile(reason):
                report = self.reconcile(reason)
                if reason == "timer":
                    self.ctx.schedule(self.settings.reconcile_interval, Reconcile("timer"))
                return report
        return super().on_receive(message)

    # -- writing -----------------------------------------------------------------------------
    def _commit(self) -> None:
        if not self._staged:
            return
        batch, self._staged = self._staged, []
        try:
            results, events = self.ledger.record(
                (fill for fill, _ in batch), self.ctx.clock.wall()
            )
        except Exception as exc:
            for _, reply in batch:
                if reply is not None:
                    reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            raise
        self.commits += 1
        for (_, reply), result in zip(batch, results, strict=True):
            if reply is None:
                if isinstance(result, Rejected):
                    log.warning("fill %s rejected: %s", result.fill_id, result.reason)
                continue
            if isinstance(result, FillRecorded):
                reply.set(result)
            else:
                err = InvalidFill(result.reason)
                reply.set_exception(exc_info=(InvalidFill, err, None))
        if events:
            update = SourceEvents(tuple(events))
            for source in self.settings.sources:
                self.ctx.try_tell(source, update)
            for event in events:
                if event.realized != 0:
                    self.ctx.try_tell(self.settings.breaker,
                                      TradeClosed(event.fill.symbol, event.realized))
            self._send_equity()
        self.ctx.publish(self.snapshot())

    def _send_equity(self) -> None:
        """Tell the breaker the account's equity and exposure, as of now."""
        self._last_sample = self.ctx.clock.now()
        book, marks = self.ledger.book, self.marks
        exposure = {
            s: abs(marks.get(s, p.avg_price) * p.quantity) for s, p in book.positions.items()
        }
        self.ctx.try_tell(
            self.settings.breaker,
            EquitySample(book.equity(marks), sum(exposure.values(), ZERO), exposure),
        )

    # -- reading -----------------------------------------------------------------------------
    def snapshot(self) -> PortfolioSnapshot:
        book = self.ledger.book
        marks = self.marks
        positions = {
            s: PositionView(p.quantity, p.avg_price, p.updated_at)
            for s, p in book.positions.items()
        }
        exposure = {
            s: abs(marks.get(s, p.avg_price) * p.quantity) for s, p in book.positions.items()
        }
        return PortfolioSnapshot(
            seq=self.ledger.seq,
            cash=book.cash,
            starting_cash=self.ledger.starting_cash,
            equity=book.equity(marks),
            realized_pnl=book.realized_pnl,
            unrealized_pnl=book.unrealized(marks),
            fees=book.fees,
            gross_exposure=sum(exposure.values(), ZERO),
            positions=positions,
            exposure_by_symbol=exposure,
            marks=dict(marks),
        )

    def ledger_state(self, reason: str) -> ResetTo:
        book = self.ledger.book
        return ResetTo(
            self.ledger.seq,
            book.cash,
            {s: PositionView(p.quantity, p.avg_price, p.updated_at)
             for s, p in book.positions.items()},
            reason,
            self.ledger.changed_at,
        )

    # -- sources -----------------------------------------------------------------------------
    def _replay(self, source: str, last_seq: int) -> None:
        """Bring a (re)started source up to date: the fills it missed, or a full reset."""
        if last_seq > self.ledger.seq or self._adjusted_since(last_seq):
            self.ctx.try_tell(source, self.ledger_state("source out of step with the ledger"))
            return
        batch: list[Any] = []
        for event in self.ledger.fills_since(last_seq):
            batch.append(event)
            if len(batch) >= 5000:
                self.ctx.try_tell(source, SourceEvents(tuple(batch)))
                batch = []
        if batch:
            self.ctx.try_tell(source, SourceEvents(tuple(batch)))

    def _adjusted_since(self, seq: int) -> bool:
        row = self.ledger.db.execute(
            "SELECT 1 FROM adjustments WHERE seq > ? LIMIT 1", (seq,)
        ).fetchone()
        return row is not None

    def reconcile(self, reason: str) -> ReconcileReport:
        assert self._reconciler is not None
        return self._reconciler.run(reason)
