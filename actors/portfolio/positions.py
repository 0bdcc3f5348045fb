"""The position actor: the single writer of position state, owner of the SQLite ledger.

Every write goes through its mailbox (no lock). Fills are group-committed and each sender
is answered only after the commit; they are deduplicated by fill id. It publishes a
PortfolioSnapshot after every commit (and, throttled, on new prices). A venue fill that
makes the book impossible is recorded, then trading is halted and alerted. It feeds the
sources their ledger events and reconciles them without blocking
(:mod:`actors.portfolio.gathering`, :class:`~actors.portfolio.reconcile.Reconciler`).
The promises: docs/trading-bot.md ("Positions").
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import pykka
from pydantic import BaseModel, ConfigDict, Field

from actors.common.messages import Alert, Fill, HaltTrading, InvalidFill
from actors.common.settings_types import StatePath
from actors.common.wal_checkpoint import Checkpointer
from actors.market.contract import MarkPrices
from actors.portfolio.contract import (
    Conflict,
    EquitySample,
    FillRecorded,
    FillsRecorded,
    GetLastFillTime,
    GetLedgerSummary,
    GetPortfolio,
    GetTrades,
    HasOrder,
    LedgerHistory,
    LedgerSummary,
    MarkPrice,
    PortfolioSnapshot,
    PositionView,
    Reconcile,
    ReconcileReport,
    RecordedFills,
    RecordFill,
    RecordFills,
    ResetTo,
    SourceEvents,
    SourceHello,
    TradeClosed,
)
from actors.portfolio.gathering import Round, RoundDue, ViewGathering
from actors.portfolio.ledger import Ledger, Rejected
from actors.portfolio.ledger_judge import impossible_book
from actors.portfolio.positions_reply import positions_reply
from actors.portfolio.reconcile import LedgerState, Reconciler, Resolution
from actors.portfolio.valuation import Valuation, Valuer, equity_sample, portfolio_snapshot
from supervisor import SupervisedActor
from supervisor.context import Replied
from supervisor.host.control_protocol import OperatorCommand
from supervisor.peers import Peer

log = logging.getLogger(__name__)

__all__ = ["PositionActor"]

SOURCE_TIMEOUT = 5.0  # a source that has not answered a reconciliation's ask by then is unavailable
MOVED_TRIES = 3  # rounds asked again while conflicts meet a ledger that moved meanwhile

Strategy = Literal[
    "trade_manager_priority", "paper_wallet_priority", "merge", "most_recent", "emergency_reset"
]


class PositionActor(SupervisedActor):
    """Owns the ledger (SQLite), the in-memory book that mirrors it, and the mark prices."""

    accepts: ClassVar[tuple[type, ...]] = (
        RecordFill, RecordFills, MarkPrices, MarkPrice, GetLastFillTime, GetLedgerSummary,
        GetPortfolio, OperatorCommand, GetTrades, HasOrder, SourceHello, Reconcile)
    publishes: ClassVar[type] = PortfolioSnapshot

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        database: StatePath = "state/ledger.db"
        starting_cash: Decimal = Field(Decimal("10000"), ge=0)
        allow_short: bool = False
        max_batch: int = Field(1024, ge=1)
        sources: Annotated[tuple[str, ...], Peer(accepts=(SourceEvents, ResetTo))] = (
            "trade_manager", "paper_wallet", "positions_log")
        reconcile_interval: float = Field(5.0, gt=0)
        conflict_strategy: Strategy = "merge"
        max_conflict_history: int = Field(100, ge=1)
        price_tolerance: Decimal = Field(Decimal("0.000001"), ge=0)
        breaker: Annotated[str, Peer(accepts=(LedgerHistory, TradeClosed, EquitySample,
                                              HaltTrading))] = "breaker"
        alerts: Annotated[str, Peer(accepts=(Alert, RecordedFills))] = "alerts"
        equity_interval: float = Field(1.0, gt=0)  # at most one equity sample per interval
        # WAL checkpoints run on a thread of their own every this many seconds, not inside
        # a fill's commit (see actors.common.wal_checkpoint)
        checkpoint_interval: float = Field(1.0, gt=0)

    def __init__(self, settings: PositionActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or PositionActor.Settings()
        self.ledger = Ledger(
            self.settings.database,
            starting_cash=self.settings.starting_cash,
            allow_short=self.settings.allow_short,
        )
        self._staged: list[tuple[RecordFill, pykka.Future[Any] | None]] = []
        self.marks: dict[str, Decimal] = {}
        self.commits = 0
        self._reconciler = Reconciler(self.settings.conflict_strategy,
                                      self.settings.price_tolerance)
        self._gathering: ViewGathering | None = None
        self._last_sample = float("-inf")
        self._valuer = Valuer()
        self._checkpointer: Checkpointer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        self.ledger.open()
        self._checkpointer = Checkpointer(self.settings.database, synchronous="full",
                                          interval=self.settings.checkpoint_interval,
                                          name="ledger").start(self.ledger.db)
        self._gathering = ViewGathering(self.ctx, self.settings.sources, SOURCE_TIMEOUT)
        log.info(
            "ledger %s open at seq %d: %d open positions, cash %s",
            self.settings.database, self.ledger.seq, len(self.ledger.book.positions),
            self.ledger.book.cash,
        )
        self.ctx.schedule(self.settings.reconcile_interval, Reconcile("timer"))
        self.ctx.publish(self.snapshot())
        # a breaker that lost its own state decides from this whether the ledger has history
        self.ctx.try_tell(self.settings.breaker,
                          LedgerHistory(self.ledger.seq, self.settings.database))
        if self.ledger.book.cash < 0 or any(
                p.quantity < 0 for p in self.ledger.book.positions.values()):
            log.error("ledger %s: the book is impossible (cash %s); trading was halted when "
                      "it became so", self.settings.database, self.ledger.book.cash)

    def on_stop(self) -> None:
        self._commit()
        self._fail_rounds(RuntimeError("position actor stopped before the reconciliation ended"))
        self._close()

    def _fail_rounds(self, error: BaseException) -> None:
        if self._gathering is not None:
            self._gathering.fail(error)

    def _close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.ledger.close()

    def on_failure(self, *exc_info: Any) -> None:
        err = RuntimeError("position actor failed before this fill was committed; resend it")
        for _, reply in self._staged:
            if reply is not None:
                reply.set_exception(exc_info=(type(err), err, None))
        self._staged.clear()
        self._fail_rounds(err)
        self._close()

    # -- messages ----------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RecordFill):
            staged = self._staged
            staged.append((message, self.defer_reply()))
            room = self.settings.max_batch - len(staged)
            if room > 0:  # the fills queued right behind this one join it, in one step
                staged.extend(self.ctx.take_run(RecordFill, room))
            if self.ctx.pending() == 0 or len(staged) >= self.settings.max_batch:
                self._commit()
            return None
        if isinstance(message, MarkPrices):
            self._commit()  # as for a MarkPrice, below
            marks = self.marks
            for symbol, price, _ in message.prices:
                marks[symbol] = Decimal(repr(price))
            self._marked()
            return None
        if isinstance(message, MarkPrice):
            # A price ends a run of fills: commit what is staged now. Otherwise a fill staged
            # while this price was waiting behind it would stay uncommitted, its sender
            # blocked, until some other kind of message happened to arrive.
            self._commit()
            self.marks[message.symbol] = message.price
            self._marked()
            return None
        self._commit()  # everything else sees only committed state
        match message:
            case RecordFills(fills):
                return self._record_batch(fills)
            case GetLastFillTime(venue):
                return self.ledger.last_fill_at(venue)
            case GetLedgerSummary():
                return LedgerSummary(self.ledger.newest_fill_at, self.ledger.fill_counts(),
                                     self.ledger.seq, self.settings.database,
                                     self.ledger.fill_digests())
            case GetPortfolio():
                return self.snapshot()
            case OperatorCommand():
                return positions_reply(message.command, self.snapshot())
            case GetTrades(limit):
                return self.ledger.trades(limit)
            case HasOrder(coid):
                return self.ledger.has_order(coid)
            case SourceHello(source, last_seq):
                self._replay(source, last_seq)
                return None
            case Reconcile(reason):
                assert self._gathering is not None
                self._reconcile(self._gathering.request(reason, self.defer_reply(),
                                                        self.ledger_view()))
                return None
            case Replied(token):
                assert self._gathering is not None
                self._reconcile(self._gathering.replied(token))
                return None
            case RoundDue(number):
                assert self._gathering is not None
                self._reconcile(self._gathering.due(number))
                return None
        return super().on_receive(message)

    # -- writing -----------------------------------------------------------------------------
    def _commit(self) -> None:
        if not self._staged:
            return
        batch, self._staged = self._staged, []
        try:
            results = self._write([message.fill for message, _ in batch])
        except Exception as exc:
            for _, reply in batch:
                if reply is not None:
                    reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            raise
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

    def _record_batch(self, fills: tuple[Fill, ...]) -> FillsRecorded:
        """RecordFills: the whole batch in one transaction; answered once it is on disk."""
        results = self._write(list(fills))
        rejected = tuple((r.fill_id, r.reason) for r in results if isinstance(r, Rejected))
        for fill_id, reason in rejected:
            log.warning("fill %s rejected: %s", fill_id, reason)
        return FillsRecorded(tuple(r for r in results if isinstance(r, FillRecorded)), rejected)

    def _write(self, fills: list[Fill]) -> list[FillRecorded | Rejected]:
        """Record ``fills`` in one transaction, then tell the sources and the breaker and
        publish the new snapshot: all before any sender hears back, so a sender that reads
        the snapshot after its reply sees its own fill."""
        if self.ctx.chaos is not None:  # rehearsal: the ledger's disk fails before the commit
            self.ctx.chaos.before_write(self.settings.database)
        results, events = self.ledger.record(fills, self.ctx.clock.wall())
        self.commits += 1
        if self.ledger.impossible:
            self._halt_impossible(events[-1].fill if events else None)
        if events:
            update = SourceEvents(tuple(events))
            for source in self.settings.sources:
                self.ctx.try_tell(source, update)
            for event in events:
                if event.realized != 0:
                    self.ctx.try_tell(self.settings.breaker,
                                      TradeClosed(event.fill.symbol, event.realized))
            if self.settings.alerts:  # one message per commit: fill alerts cost no fsync
                self.ctx.try_tell(self.settings.alerts,
                                  RecordedFills(tuple(e.fill for e in events)))
        self._publish(equity=bool(events))
        return results

    def _halt_impossible(self, last: Fill | None) -> None:
        """The venue's fills make the book impossible: they are recorded (facts), and
        trading halts until an operator acts. The breaker is asked, so it is HALTED before
        the sender of these fills hears back; if it cannot answer, it is told."""
        reason = impossible_book(self.ledger.impossible)
        log.critical("ledger %s: %s", self.settings.database, reason)
        halt = HaltTrading(reason, by="positions")
        try:
            self.ctx.ask(self.settings.breaker, halt, timeout=2.0)
        except Exception:  # a breaker that cannot answer now still gets the message
            self.ctx.try_tell(self.settings.breaker, halt)
        self.ctx.try_tell(self.settings.alerts, Alert(
            "positions.impossible_book", "critical",
            "Venue fills make the book impossible: trading halted",
            reason + (f" (last fill {last.fill_id})" if last is not None else "")))

    def _marked(self) -> None:
        """New prices: an equity sample and a snapshot, at most once per interval."""
        if self.ctx.clock.now() - self._last_sample >= self.settings.equity_interval:
            self._publish(equity=True)

    def _publish(self, *, equity: bool) -> None:
        """Publish the snapshot and, with ``equity``, tell the breaker the account's equity
        and exposure: both from one valuation of the book."""
        valued = self._valuer.value(self.ledger.book.positions, self.marks)
        if equity:
            self._last_sample = self.ctx.clock.now()
            self.ctx.try_tell(self.settings.breaker, equity_sample(self.ledger.book, valued))
        self.ctx.publish(self.snapshot(valued))

    # -- reading -----------------------------------------------------------------------------
    def snapshot(self, valued: Valuation | None = None) -> PortfolioSnapshot:
        book = self.ledger.book
        if valued is None:
            valued = self._valuer.value(book.positions, self.marks)
        return portfolio_snapshot(self.ledger.seq, self.ledger.starting_cash, book, valued,
                                  self.marks)

    def ledger_view(self) -> LedgerState:
        book = self.ledger.book
        return LedgerState(
            self.ledger.seq, book.cash,
            {s: PositionView(p.quantity, p.avg_price, p.updated_at)
             for s, p in book.positions.items()},
            self.ledger.changed_at)

    def ledger_state(self, reason: str) -> ResetTo:
        view = self.ledger_view()
        return ResetTo(view.seq, view.cash, dict(view.positions), reason, view.changed_at)

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

    # -- reconciliation ----------------------------------------------------------------------
    def _reconcile(self, done: Round | None) -> None:
        """A round's views are in: decide (the pure Reconciler), apply, answer; then the
        round that waited, if any."""
        while done is not None:
            assert self._gathering is not None
            rules, ledger = self._reconciler, self.ledger_view()
            conflicts = rules.detect_all(done.views, done.ledger)
            actions: list[str] = []
            if conflicts and ledger.seq != done.ledger.seq:  # fills came in meanwhile
                if done.attempt < MOVED_TRIES:
                    done = self._gathering.again(done, ledger)
                    continue
                actions = ["the ledger moved while the views were gathered: "
                           "left to the next reconciliation"]
            elif conflicts:
                actions = self._apply(rules.resolve(done.views, ledger))
                state = self.ledger_state(f"reconciliation ({rules.strategy})")
                for source in rules.to_reset(done.views, self.ledger_view()):
                    self.ctx.try_tell(source, state)
                    actions.append(f"reset {source} to the ledger")
                self._record(conflicts, actions, done.reason)
            report = ReconcileReport(
                done.reason, self.ledger.seq, tuple(done.views), tuple(done.unavailable),
                tuple(conflicts), tuple(actions), rules.strategy)
            for reply in done.replies:
                if reply is not None:
                    reply.set(report)
            if "timer" in done.reasons:
                self.ctx.schedule(self.settings.reconcile_interval, Reconcile("timer"))
            done = self._gathering.next_round(self.ledger_view())

    def _apply(self, resolution: Resolution) -> list[str]:
        strategy, ledger = self._reconciler.strategy, self.ledger
        now = self.ctx.clock.wall()
        actions: list[str] = []
        if resolution.halt:
            self.ctx.try_tell(
                self.settings.breaker,
                HaltTrading("emergency reset of the ledger's sources", by="positions"),
            )
            actions.append("halted trading through the breaker")
        for symbol, value, winner in resolution.positions:
            qty, avg = value if value is not None else (Decimal(0), Decimal(0))
            ledger.adjust_position(symbol, qty, avg, f"{strategy}: {winner} wins", now)
            flat = "flat" if value is None else f"{value[0]} @ {value[1]}"
            actions.append(f"ledger {symbol} set to {flat} from {winner}")
        if resolution.cash is not None:
            cash, winner = resolution.cash
            ledger.adjust_cash(cash, f"{strategy}: {winner} wins", now)
            actions.append(f"ledger cash set to {cash} from {winner}")
        return actions

    def _record(self, conflicts: list[Conflict], actions: list[str], reason: str) -> None:
        strategy = self._reconciler.strategy
        now = self.ctx.clock.wall()
        for conflict in conflicts:
            record: dict[str, Any] = asdict(conflict)
            record.update(strategy=strategy, actions=actions, reason=reason, at=now)
            self.ledger.save_conflict(record, now, self.settings.max_conflict_history)
        alert, summary = self._reconciler.alert(conflicts, actions)
        self.ctx.try_tell(self.settings.alerts, alert)
        log.warning("reconciliation (%s) found %s; %s", reason, summary, "; ".join(actions))
