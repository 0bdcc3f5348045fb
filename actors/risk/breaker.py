"""The circuit breaker actor: CLOSED / OPEN / HALF_OPEN (and HALTED), from real triggers.

Owns the breaker state, its triggers (:mod:`actors.risk.triggers`) and its SQLite file,
and publishes the :class:`~actors.risk.contract.BreakerGate` the executor checks. OPEN
refuses only orders that add exposure; HALTED refuses every order. Every transition is
persisted before it is published and sent to the alerts actor. Missing state never reads
as CLOSED: it starts OPEN, "state unknown", until the ledger says whether it has history.
Its transitions are the table in :mod:`actors.risk.transitions` (docs/state-machines.md);
the timeouts and triggers: docs/trading-bot.md ("Circuit breaker"); lost state:
docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import psutil
from pydantic import BaseModel, ConfigDict, Field

from actors.common.messages import Alert, HaltTrading
from actors.common.settings_types import StatePath
from actors.common.storage import open_database
from actors.common.wal_checkpoint import Checkpointer
from actors.market.contract import FeedHealth, MarketSamples, PriceSample, VolumeSample
from actors.portfolio.contract import EquitySample, LedgerHistory, PortfolioSnapshot, TradeClosed
from actors.risk.contract import (
    ApiResult,
    BreakerGate,
    BreakerState,
    BreakerStatus,
    BreakerTransition,
    ForceClose,
    ForceOpen,
    GetBreakerStatus,
    ProbeResult,
    SampleResources,
)
from actors.risk.transitions import BreakerEvent, next_state, permits
from actors.risk.triggers import (
    ApiErrorTrigger,
    ConsecutiveLossTrigger,
    DailyLossTrigger,
    DrawdownTrigger,
    ExposureTrigger,
    LiquidityTrigger,
    ResourceTrigger,
    StaleDataTrigger,
    Trip,
    VolatilityTrigger,
)
from supervisor import SupervisedActor
from supervisor.errors import UnknownActor
from supervisor.host.control_protocol import OperatorCommand
from supervisor.peers import Peer

log = logging.getLogger(__name__)

__all__ = ["BreakerActor"]


class _Off(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


class DrawdownSettings(_Off):
    """``drawdown``: open when equity falls this far below its peak (``max_drawdown_percent``)."""

    max_percent: float = Field(10.0, gt=0, le=100)


class DailyLossSettings(_Off):
    """``daily_loss``: open when the day's loss reaches this percent of its starting equity."""

    max_percent: float = Field(15.0, gt=0, le=100)
    timezone: str = "UTC"


class ApiErrorSettings(_Off):
    """``api_errors``: error rate in a sliding window; failures in a row (``failure_threshold``)."""

    window_seconds: float = Field(300.0, gt=0)
    min_calls: int = Field(10, ge=1)
    max_error_rate: float = Field(0.5, gt=0, le=1)
    max_consecutive: int = Field(5, ge=0)  # the original bot's failure_threshold; 0 = off


class LossStreakSettings(_Off):
    """``consecutive_losses``: open after this many losing trades in a row."""

    max_losses: int = Field(5, ge=1)


class VolatilitySettings(_Off):
    """``volatility``: realised volatility over a window of market time, in percent."""

    window_seconds: float = Field(3600.0, gt=0)
    max_percent: float = Field(8.0, gt=0)
    min_samples: int = Field(10, ge=2)


class LiquiditySettings(_Off):
    """``liquidity``: traded volume floor for symbols we hold."""

    min_volume: float = Field(1000.0, ge=0)


class ExposureSettings(_Off):
    """``exposure``: gross exposure over equity, in total and per symbol."""

    max_gross_percent: float = Field(100.0, gt=0)
    max_symbol_percent: float = Field(35.0, gt=0)


class ResourceSettings(_Off):
    """``resources``: process memory and CPU, sampled with psutil off the order path."""

    interval_seconds: float = Field(5.0, gt=0)
    max_rss_mb: float = Field(1024.0, gt=0)
    max_cpu_percent: float = Field(95.0, gt=0)
    sustain_samples: int = Field(6, ge=1)


class StaleDataSettings(_Off):
    """``stale_data``: held open while a live feed reports no closed candle for its
    ``stale_after`` timeframes (the feed's setting; it sends ``FeedHealth``)."""


@dataclass
class _Persisted:
    state: BreakerState = BreakerState.CLOSED
    reason: str = "initial state"
    by: str = "breaker"
    since: float = 0.0
    manual: bool = False
    recovery_at: float | None = None
    figures: tuple[tuple[str, str], ...] = ()
    trip_times: tuple[float, ...] = ()
    peak: str | None = None
    # the state was lost (how, e.g. "missing"): held OPEN until the ledger answers
    pending: str | None = None
    successes: int = 0  # good probes in this HALF_OPEN period


class BreakerActor(SupervisedActor):
    """Owns the breaker state machine, its triggers, and ``breaker.db``."""

    accepts: ClassVar[tuple[type, ...]] = (
        MarketSamples, EquitySample, TradeClosed, ApiResult, PriceSample, VolumeSample,
        FeedHealth, ProbeResult, ForceOpen, ForceClose, LedgerHistory, HaltTrading,
        GetBreakerStatus, OperatorCommand)
    publishes: ClassVar[type] = BreakerGate

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        database: StatePath = "state/breaker.db"
        recovery_timeout: float = Field(300.0, gt=0)
        max_recovery_timeout: float = Field(3600.0, gt=0)
        timeout_multiplier: float = Field(2.0, ge=1)
        trip_memory_seconds: float = Field(86400.0, gt=0)
        half_open_max_calls: int = Field(1, ge=1)
        success_threshold: int = Field(1, ge=1)
        alerts: Annotated[str, Peer(accepts=(Alert, BreakerTransition))] = "alerts"
        # The position actor: with no state file of its own, the breaker stays OPEN until it
        # says whether the ledger has history. None: no ledger to ask (no state is CLOSED)
        ledger: Annotated[str | None, Peer(publishes=PortfolioSnapshot)] = "positions"
        drawdown: DrawdownSettings = DrawdownSettings()
        daily_loss: DailyLossSettings = DailyLossSettings()
        api_errors: ApiErrorSettings = ApiErrorSettings()
        consecutive_losses: LossStreakSettings = LossStreakSettings()
        volatility: VolatilitySettings = VolatilitySettings()
        liquidity: LiquiditySettings = LiquiditySettings()
        exposure: ExposureSettings = ExposureSettings()
        resources: ResourceSettings = ResourceSettings()
        stale_data: StaleDataSettings = StaleDataSettings()

    def __init__(self, settings: BreakerActor.Settings | None = None) -> None:
        super().__init__()
        s = self.settings = settings or BreakerActor.Settings()
        self.drawdown = DrawdownTrigger(s.drawdown.max_percent) if s.drawdown.enabled else None
        self.daily = (DailyLossTrigger(s.daily_loss.max_percent, s.daily_loss.timezone)
                      if s.daily_loss.enabled else None)
        a = s.api_errors
        self.api = (ApiErrorTrigger(a.window_seconds, a.min_calls, a.max_error_rate,
                                    a.max_consecutive) if a.enabled else None)
        self.losses = (ConsecutiveLossTrigger(s.consecutive_losses.max_losses)
                       if s.consecutive_losses.enabled else None)
        v = s.volatility
        self.volatility = (VolatilityTrigger(v.window_seconds, v.max_percent, v.min_samples)
                           if v.enabled else None)
        self.liquidity = (LiquidityTrigger(s.liquidity.min_volume)
                          if s.liquidity.enabled else None)
        self.exposure = (ExposureTrigger(s.exposure.max_gross_percent,
                                         s.exposure.max_symbol_percent)
                         if s.exposure.enabled else None)
        r = s.resources
        self.resources = (ResourceTrigger(r.max_rss_mb, r.max_cpu_percent, r.sustain_samples)
                          if r.enabled else None)
        self.stale = StaleDataTrigger() if s.stale_data.enabled else None
        self.p = _Persisted()
        self.transitions = 0
        self._token = 0
        self._db: sqlite3.Connection | None = None
        self._synchronous = "FULL"
        self._checkpointer: Checkpointer | None = None
        self._process: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        path = Path(self.settings.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        lost: str | None = None
        try:
            row = self._open(path)
            if row is not None:
                self._restore(json.loads(row))
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
            self._close_db()
            if isinstance(exc, sqlite3.OperationalError):  # a disk that fails, not a damaged
                raise                                       # file: keep it, crash, retry
            aside = _move_aside(path, self.ctx.clock.wall())
            lost = f"damaged ({type(exc).__name__}: {exc}; moved to {aside})"
            log.error("breaker state %s is %s", path, lost)
            row = self._open(path)
        db = self._db
        assert db is not None
        if row is None:
            lost = lost or ("missing" if not existed else "empty")
            self.p = _Persisted(since=self.ctx.clock.wall())
            if self.settings.ledger is not None or lost.startswith("damaged"):
                self.p.state, self.p.manual, self.p.pending = BreakerState.OPEN, True, lost
                self.p.reason = (f"state unknown: {path} {lost}; held open until the "
                                 "ledger says whether it has history")
            self._save()
        if self.p.pending is not None and self.settings.ledger is not None:
            with suppress(UnknownActor):  # not started yet: it tells us when it opens
                snap = self.ctx.peek(self.settings.ledger)
                if isinstance(snap, PortfolioSnapshot):
                    self._settle(LedgerHistory(snap.seq))
        elif self.p.pending is not None:  # damaged, and no ledger to ask: an operator must
            self._settle(LedgerHistory(-1))
        self.transitions = int(db.execute("SELECT COUNT(*) FROM transitions").fetchone()[0])
        if self.p.state is BreakerState.HALF_OPEN and not self._same_period():
            self._reopen_half_open()
        self._publish()
        if self.p.state is BreakerState.OPEN and not self.p.manual:
            self._schedule_recovery()
        if self.resources is not None:
            self._process = psutil.Process()
            self._process.cpu_percent(None)  # prime: the first reading is always 0
            self.ctx.schedule(self.settings.resources.interval_seconds, SampleResources())
        log.info("breaker %s (%s)", self.p.state.value, self.p.reason)

    def _same_period(self) -> bool:
        """Whether this process published the HALF_OPEN period the record holds (a restart
        of the actor): its gate knows the probe slots already handed out."""
        gate = self.ctx.peek(self.ctx.name)
        return (isinstance(gate, BreakerGate) and gate.state is BreakerState.HALF_OPEN
                and gate.since == self.p.since)

    def _reopen_half_open(self) -> None:
        """A new process found the breaker HALF_OPEN: how many probes the last one sent
        is not known (its gate is gone), so a fresh period could let more through. Open
        again; the recovery timeout brings a new HALF_OPEN period with a full count."""
        self.p.recovery_at = self.ctx.clock.wall() + self.settings.recovery_timeout
        self._transition(BreakerEvent.RESTARTED_HALF_OPEN,
                         "restarted in half-open: the probes already sent "
                         "are not known; open again until the recovery timeout")

    def _open(self, path: Path) -> str | None:
        """Open (or create) the state file; its state record, if it has one."""
        db = open_database(path, isolation_level=None)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # self._synchronous says so from __init__
        db.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), "
                   "record TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS transitions (id INTEGER PRIMARY KEY "
                   "AUTOINCREMENT, at REAL NOT NULL, record TEXT NOT NULL)")
        self._checkpointer = Checkpointer(path, synchronous="full", name="breaker").start(db)
        row = db.execute("SELECT record FROM state WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def _settle(self, history: LedgerHistory) -> None:
        """The ledger answered: decide the state a breaker with lost state starts in."""
        lost = self.p.pending
        if lost is None or self.p.state is not BreakerState.OPEN:
            return
        where = history.database or "the ledger"
        if history.seq == 0:  # a new deployment: nothing to protect, nothing was lost
            self.p = _Persisted(reason=f"initial state (no breaker state: {lost}; "
                                       f"{where} has no history)",
                                since=self.ctx.clock.wall())
            self._save()
            self._publish()
            log.info("breaker closed: no breaker state and no ledger history (a new "
                     "deployment)")
            if lost.startswith("damaged"):
                self.ctx.try_tell(self.settings.alerts, Alert(
                    "breaker.state_lost", "warning", "Breaker state damaged",
                    f"{self.settings.database} was {lost}; the ledger has no history, so "
                    "the breaker starts closed"))
            return
        history_text = ("has history" if history.seq > 0 else "could not be asked")
        reason = (f"breaker state lost ({self.settings.database} {lost}) while {where} "
                  f"{history_text}: held open (exits only) until an operator closes it "
                  "(botvisor breaker close)")
        self._transition(BreakerEvent.STATE_LOST, reason)
        self.ctx.try_tell(self.settings.alerts, Alert(
            "breaker.state_lost", "critical", "Breaker state lost: held open", reason))

    def on_stop(self) -> None:
        self._close_db()

    def on_failure(self, *exc_info: Any) -> None:
        self._close_db()

    def _close_db(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- messages ----------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case MarketSamples(samples):
                self._on_samples(samples)
            case EquitySample():
                self._on_equity(message)
            case TradeClosed(_, pnl):
                if self.losses is not None:
                    self._maybe_trip(self.losses.on_trade(pnl))
            case ApiResult(ok):
                if self.api is not None:
                    self._maybe_trip(self.api.on_call(ok, self.ctx.clock.now()))
            case PriceSample(symbol, price, at):
                if self.volatility is not None:
                    self._maybe_trip(self.volatility.on_price(symbol, price, at))
            case VolumeSample(symbol, volume):
                if self.liquidity is not None:
                    self._maybe_trip(self.liquidity.on_volume(symbol, volume))
            case FeedHealth():
                if self.stale is not None:
                    self._on_feed_health(message)
            case ProbeResult(ok, detail):
                self._on_probe(ok, detail)
            case SampleResources():
                self._sample_resources()
            case _Recover(token):
                if token == self._token:
                    self._recover()
            case ForceOpen(by, why):
                self._transition(BreakerEvent.FORCE_OPEN, f"forced open: {why}", by=by)
                return self.status()
            case ForceClose(by, why):
                self._rearm_all()
                self._transition(BreakerEvent.FORCE_CLOSE, f"forced closed: {why}", by=by)
                return self.status()
            case LedgerHistory():
                self._settle(message)
            case HaltTrading(reason, by):
                self._transition(BreakerEvent.HALT, f"halted: {reason}", by=by)
                return self.status()
            case GetBreakerStatus():
                return self.status()
            case OperatorCommand():
                return self._operator(message)
            case _:
                return super().on_receive(message)
        return None

    # -- inputs ------------------------------------------------------------------------------
    def _on_samples(self, samples: tuple[tuple[str, float, float, float], ...]) -> None:
        """One market emit: per bar, its price sample and then its volume sample."""
        volatility, liquidity = self.volatility, self.liquidity
        for symbol, price, at, volume in samples:
            if volatility is not None:
                trip = volatility.on_price(symbol, price, at)
                if trip is not None:
                    self._maybe_trip(trip)
            if liquidity is not None:
                trip = liquidity.on_volume(symbol, volume)
                if trip is not None:
                    self._maybe_trip(trip)

    def _on_equity(self, sample: EquitySample) -> None:
        trips = []
        before = self._memory()
        if self.drawdown is not None:
            trips.append(self.drawdown.on_equity(sample.equity))
        if self.daily is not None:
            trips.append(self.daily.on_equity(sample.equity, self.ctx.clock.wall()))
        if self._memory() != before:  # a new peak or a new day: it must survive a restart
            self._save()
        if self.exposure is not None:
            trips.append(self.exposure.on_exposure(sample.equity, sample.gross_exposure,
                                                   sample.exposure_by_symbol))
        if self.liquidity is not None:
            held = {s for s, v in sample.exposure_by_symbol.items() if v > 0}
            trips.append(self.liquidity.on_holdings(held))
        for trip in trips:
            if trip is not None:
                self._maybe_trip(trip)
                break

    def _on_feed_health(self, health: FeedHealth) -> None:
        """A live feed's staleness: trips (a level) when it is stale, an alert when it goes
        stale and when it is fresh again; the breaker closes then by its normal rules."""
        assert self.stale is not None
        was = health.source in self.stale.stale
        before, transitions = dict(self.stale.stale), self.transitions
        trip = self.stale.on_health(health.source, health.stale, health.stale_symbols,
                                    health.last_closed_at, health.at)
        if trip is not None and not was:
            self.ctx.try_tell(self.settings.alerts, Alert(
                "breaker.stale_data", "warning", f"Market feed {health.source} is stale",
                f"{trip.reason}; new positions are refused while it lasts, exits still run"))
        elif trip is None and was:
            self.ctx.try_tell(self.settings.alerts, Alert(
                "breaker.stale_data_recovered", "info",
                f"Market feed {health.source} is fresh again",
                "closed candles flow again; the breaker closes by its recovery timeout and "
                "probes"))
        self._maybe_trip(trip)
        if self.transitions == transitions and self.stale.stale != before:
            self._save()  # what holds the breaker must survive a restart

    def _sample_resources(self) -> None:
        assert self.resources is not None and self._process is not None
        rss = int(self._process.memory_info().rss)
        cpu = float(self._process.cpu_percent(None))
        self._maybe_trip(self.resources.on_sample(rss, cpu))
        self.ctx.schedule(self.settings.resources.interval_seconds, SampleResources())

    def _on_probe(self, ok: bool, detail: str) -> None:
        if not self._permits(BreakerEvent.PROBES_PASSED):  # a late result: not HALF_OPEN
            return
        if not ok:
            self._trip(Trip("probe", f"probe order failed: {detail}", (("detail", detail),)))
            return
        self.p.successes += 1
        if self.p.successes >= self.settings.success_threshold:
            self._transition(BreakerEvent.PROBES_PASSED,
                             f"{self.p.successes} successful probe(s) in half-open")
        else:
            self._save()

    # -- the state machine -------------------------------------------------------------------
    def _maybe_trip(self, trip: Trip | None) -> None:
        if trip is not None and self._permits(BreakerEvent.TRIP):
            self._trip(trip)

    def _trip(self, trip: Trip) -> None:
        now_wall = self.ctx.clock.wall()
        memory = self.settings.trip_memory_seconds
        recent = [t for t in self.p.trip_times if t > now_wall - memory] + [now_wall]
        self.p.trip_times = tuple(recent)
        timeout = min(
            self.settings.max_recovery_timeout,
            self.settings.recovery_timeout * self.settings.timeout_multiplier ** (len(recent) - 1),
        )
        self.p.recovery_at = now_wall + timeout
        self._transition(BreakerEvent.TRIP, f"{trip.trigger}: {trip.reason}",
                         figures=(*trip.figures, ("recovery_timeout_s", f"{timeout:g}")))
        self._schedule_recovery()

    def _schedule_recovery(self) -> None:
        self._token += 1
        at = self.p.recovery_at if self.p.recovery_at is not None else self.ctx.clock.wall()
        self.ctx.schedule(max(0.0, at - self.ctx.clock.wall()), _Recover(self._token))

    def _recover(self) -> None:
        if not self._permits(BreakerEvent.RECOVERY_TIMEOUT):  # closed or held by hand
            return
        wall = self.ctx.clock.wall()
        holds = [h for h in self._holding(wall) if h]
        if not self._permits(BreakerEvent.RECOVERY_TIMEOUT, holding=bool(holds)):
            wait = self.settings.recovery_timeout
            if self.daily is not None and self.daily.holding(wall):
                wait = max(1.0, self.daily.next_day_start(wall) - wall)
            self.p.recovery_at = wall + wait
            self.p.reason = f"still open: {'; '.join(holds)}"
            self._save()
            self._publish()
            self._schedule_recovery()
            return
        for trigger in (self.drawdown, self.api, self.losses):
            if trigger is not None:
                trigger.rearm()
        self._transition(BreakerEvent.RECOVERY_TIMEOUT,
                         f"recovery timeout passed; {self.settings.half_open_max_calls} "
                         "probe order(s) allowed", holding=bool(holds))

    def _holding(self, wall: float) -> list[str | None]:
        return [
            self.daily.holding(wall) if self.daily else None,
            self.volatility.holding() if self.volatility else None,
            self.liquidity.holding() if self.liquidity else None,
            self.exposure.holding() if self.exposure else None,
            self.resources.holding() if self.resources else None,
            self.stale.holding() if self.stale else None,
        ]

    def _rearm_all(self) -> None:
        for trigger in (self.drawdown, self.api, self.losses):
            if trigger is not None:
                trigger.rearm()

    def _permits(self, what: BreakerEvent, *, holding: bool = False) -> bool:
        return permits(self.p.state, what, manual=self.p.manual, holding=holding)

    def _transition(
        self,
        what: BreakerEvent,
        reason: str,
        *,
        by: str = "breaker",
        figures: tuple[tuple[str, str], ...] = (),
        holding: bool = False,
    ) -> None:
        """Apply ``what`` by the table (actors/risk/transitions.py): an event it does not
        allow from the current state raises IllegalTransition, and nothing changes."""
        previous = self.p.state
        rule = next_state(previous, what, manual=self.p.manual, holding=holding)
        state, manual = rule.target, rule.manual
        wall = self.ctx.clock.wall()
        self.p.state, self.p.reason, self.p.by = state, reason, by
        self.p.since, self.p.manual, self.p.figures = wall, manual, figures
        self.p.pending = None  # a transition decides the state
        if state is not BreakerState.OPEN:
            self.p.recovery_at = None
            self._token += 1  # cancels a pending recovery
        self.p.successes = 0  # a new state, a new count of good probes
        self.transitions += 1
        event = BreakerTransition(previous.value, state.value, reason, figures, by, wall)
        self._save(event)
        self._publish()
        log.warning("breaker %s -> %s: %s", previous.value, state.value, reason)
        self.ctx.try_tell(self.settings.alerts, event)

    # -- persistence and publishing ----------------------------------------------------------
    def _publish(self) -> None:
        probes = self.settings.half_open_max_calls if self.p.state is BreakerState.HALF_OPEN else 0
        self.ctx.publish(BreakerGate(self.p.state, self.p.reason, self.p.since, probes)
                         .continuing(self.ctx.peek(self.ctx.name)))

    def _memory(self) -> tuple[Decimal | None, str | None, Decimal | None]:
        """What the equity triggers remember: the peak, and the day with its start equity."""
        peak = self.drawdown.peak if self.drawdown is not None else None
        day, start = (self.daily.day, self.daily.start_equity) if self.daily is not None \
            else (None, None)
        return peak, day, start

    def _save(self, event: BreakerTransition | None = None) -> None:
        assert self._db is not None
        p = self.p
        peak, day, start = self._memory()
        record = {
            "state": p.state.value, "reason": p.reason, "by": p.by, "since": p.since,
            "manual": p.manual, "recovery_at": p.recovery_at, "figures": list(p.figures),
            "trip_times": list(p.trip_times), "peak": str(peak) if peak is not None else None,
            "day": day, "day_start_equity": str(start) if start is not None else None,
            "pending": p.pending, "successes": p.successes,
            "stale": {src: [list(sy), last, at] for src, (sy, last, at)
                      in (self.stale.stale if self.stale is not None else {}).items()},
        }
        # A transition is fsynced before it counts (synchronous=FULL). The running memory
        # alone (a new equity peak, a new day: with every fill, on the pipeline's thread) is
        # written without an fsync (NORMAL): it survives a crash of the process; a power cut
        # may lose its last updates, and the restarted breaker then has a slightly older peak.
        synchronous = "FULL" if event is not None else "NORMAL"
        if synchronous != self._synchronous:
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT INTO state (id, record) VALUES (1, ?) ON CONFLICT(id) DO "
                             "UPDATE SET record = excluded.record", (json.dumps(record),))
            if event is not None:
                self._db.execute(
                    "INSERT INTO transitions (at, record) VALUES (?, ?)",
                    (event.at, json.dumps({"from": event.previous, "to": event.state,
                                           "reason": event.reason, "by": event.by,
                                           "figures": list(event.figures)})))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _restore(self, record: dict[str, Any]) -> None:
        self.p = _Persisted(
            state=BreakerState(record["state"]), reason=record["reason"], by=record["by"],
            since=record["since"], manual=record["manual"], recovery_at=record["recovery_at"],
            figures=tuple((str(k), str(v)) for k, v in record["figures"]),
            trip_times=tuple(record["trip_times"]), peak=record.get("peak"),
            pending=record.get("pending"), successes=int(record.get("successes") or 0),
        )
        if self.drawdown is not None and self.p.peak is not None:
            self.drawdown.peak = Decimal(self.p.peak)
        # The day's starting equity too: a restart must not reset the daily loss to zero.
        if self.daily is not None and record.get("day_start_equity") is not None:
            self.daily.day = record.get("day")
            self.daily.start_equity = Decimal(record["day_start_equity"])
        # The feeds that were stale: a restart must not let the breaker recover on old news.
        if self.stale is not None:
            self.stale.stale = {str(src): (tuple(str(x) for x in sy), last, float(at))
                                for src, (sy, last, at) in (record.get("stale") or {}).items()}

    # -- the operator: `botvisor breaker open|close|halt|status` ------------------------------
    def _operator(self, command: OperatorCommand) -> dict[str, Any]:
        """Answer an operator's command with the breaker's status, as plain JSON data."""
        why = command.reason or "no reason given"
        if command.command == "open":
            self.on_receive(ForceOpen(command.who, why))
        elif command.command == "close":
            self.on_receive(ForceClose(command.who, why))
        elif command.command == "halt":
            self.on_receive(HaltTrading(why, command.who))
        elif command.command != "status":
            return {"error": f"breaker: unknown command {command.command!r} "
                             "(open, close, halt, status)", "code": 2}
        s = self.status()
        return {
            "state": s.state.value, "reason": s.reason, "by": s.by, "since": s.since,
            "manual": s.manual, "recovery_at": s.recovery_at,
            "trips_recently": s.trips_recently, "transitions": s.transitions,
            "figures": dict(s.figures), "measures": dict(s.measures),
        }

    # -- status ------------------------------------------------------------------------------
    def status(self) -> BreakerStatus:
        measures: dict[str, str] = {}
        if self.drawdown is not None and self.drawdown.peak is not None:
            measures["peak_equity"] = str(self.drawdown.peak)
        if self.daily is not None and self.daily.start_equity is not None:
            measures["daily_loss_pct"] = f"{float(self.daily.loss_pct):.4f}"
        if self.api is not None:
            measures["api_calls_in_window"] = str(len(self.api.calls))
            measures["api_failures_in_row"] = str(self.api.failures_in_row)
        if self.losses is not None:
            measures["losing_streak"] = str(self.losses.streak)
        if self.volatility is not None:
            for sym, vol in sorted(self.volatility.current.items()):
                measures[f"volatility_pct.{sym}"] = f"{vol:.4f}"
        if self.resources is not None:
            measures["rss_mb"] = f"{self.resources.rss_mb:.1f}"
            measures["cpu_pct"] = f"{self.resources.cpu:.1f}"
        if self.stale is not None:
            for source, (symbols, _, _) in sorted(self.stale.stale.items()):
                measures[f"stale_symbols.{source}"] = ",".join(symbols)
        wall = self.ctx.clock.wall()
        return BreakerStatus(
            state=self.p.state, reason=self.p.reason, by=self.p.by, since=self.p.since,
            manual=self.p.manual, recovery_at=self.p.recovery_at,
            trips_recently=sum(1 for t in self.p.trip_times
                               if t > wall - self.settings.trip_memory_seconds),
            figures=self.p.figures, measures=measures, transitions=self.transitions,
        )


@dataclass(frozen=True, slots=True)
class _Recover:
    token: int


def _move_aside(path: Path, wall: float) -> Path:
    """Rename a damaged state file (and its WAL files) out of the way; its new name."""
    aside = path.with_name(f"{path.name}.damaged-{int(wall)}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{aside}{suffix}"))
    return aside
