"""The circuit breaker actor: CLOSED / OPEN / HALF_OPEN (and HALTED), from real triggers.

A shell over :class:`~actors.risk.machine.BreakerCore`, which owns the state, its triggers
and the recovery timing: the actor owns the SQLite file, the ledger question at start,
psutil sampling, the timers, and publishes the :class:`~actors.risk.contract.BreakerGate`
the executor checks. OPEN refuses only orders that add exposure; HALTED refuses every
order. Every transition is persisted before it is published and sent to the alerts actor.
Missing state never reads as CLOSED: it starts OPEN, "state unknown", until the ledger says
whether it has history. Its transitions are the table in :mod:`actors.risk.transitions`
(docs/state-machines.md); the timeouts and triggers: docs/trading-bot.md ("Circuit
breaker"); lost state: docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import psutil

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
from actors.risk.effects import Effect, RecoverAt, Remember, Tell, Transitioned
from actors.risk.machine import BreakerCore
from actors.risk.settings import BreakerRules
from supervisor import SupervisedActor
from supervisor.errors import UnknownActor
from supervisor.host.control_protocol import OperatorCommand
from supervisor.peers import Peer

log = logging.getLogger(__name__)

__all__ = ["BreakerActor"]


class BreakerActor(SupervisedActor):
    """Wraps :class:`~actors.risk.machine.BreakerCore` (the one owner of the breaker's state)
    with ``breaker.db``, the ledger question at start, psutil sampling, timers, publishing
    and the operator's verbs."""

    accepts: ClassVar[tuple[type, ...]] = (
        MarketSamples, EquitySample, TradeClosed, ApiResult, PriceSample, VolumeSample,
        FeedHealth, ProbeResult, ForceOpen, ForceClose, LedgerHistory, HaltTrading,
        GetBreakerStatus, OperatorCommand)
    publishes: ClassVar[type] = BreakerGate

    class Settings(BreakerRules):
        database: StatePath = "state/breaker.db"
        alerts: Annotated[str, Peer(accepts=(Alert, BreakerTransition))] = "alerts"
        # The position actor: with no state file of its own, the breaker stays OPEN until it
        # says whether the ledger has history. None: no ledger to ask (no state is CLOSED)
        ledger: Annotated[str | None, Peer(publishes=PortfolioSnapshot)] = "positions"

    def __init__(self, settings: BreakerActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or BreakerActor.Settings()
        self.core = BreakerCore(self.settings)
        self.transitions = 0
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
                self.core = BreakerCore.from_record(self.settings, json.loads(row))
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
            held = self.settings.ledger is not None or lost.startswith("damaged")
            self._apply(self.core.start_without_state(self.ctx.clock.wall(),
                                                      lost if held else None, str(path)))
        if self.core.pending is not None and self.settings.ledger is not None:
            with suppress(UnknownActor):  # not started yet: it tells us when it opens
                snap = self.ctx.peek(self.settings.ledger)
                if isinstance(snap, PortfolioSnapshot):
                    self._settle(LedgerHistory(snap.seq))
        elif self.core.pending is not None:  # damaged, and no ledger to ask: an operator must
            self._settle(LedgerHistory(-1))
        self.transitions = int(db.execute("SELECT COUNT(*) FROM transitions").fetchone()[0])
        # a restart of this actor finds its own gate; a new process finds none
        self._apply(self.core.resume(self.ctx.clock.wall(), self.ctx.peek(self.ctx.name)))
        self._publish()
        if self.settings.resources.enabled:
            self._process = psutil.Process()
            self._process.cpu_percent(None)  # prime: the first reading is always 0
            self.ctx.schedule(self.settings.resources.interval_seconds, SampleResources())
        log.info("breaker %s (%s)", self.core.state.value, self.core.reason)

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
        lost = self.core.pending
        self._apply(self.core.settle(history, self.ctx.clock.wall(), self.settings.database))
        if lost is not None and self.core.state is BreakerState.CLOSED:
            log.info("breaker closed: no breaker state and no ledger history (a new "
                     "deployment)")

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
        core, wall = self.core, self.ctx.clock.wall
        match message:
            case MarketSamples(samples):
                effects = core.samples(samples, wall())
                if effects:
                    self._apply(effects)
            case EquitySample():
                self._apply(core.equity(message, wall()))
            case TradeClosed(_, pnl):
                self._apply(core.trade_closed(pnl, wall()))
            case ApiResult(ok):
                self._apply(core.api_result(ok, now=self.ctx.clock.now(), wall=wall()))
            case PriceSample(symbol, price, at):
                self._apply(core.price(symbol, price, at, wall()))
            case VolumeSample(symbol, volume):
                self._apply(core.volume(symbol, volume, wall()))
            case FeedHealth():
                self._apply(core.feed_health(message, wall()))
            case ProbeResult(ok, detail):
                self._apply(core.probe(ok, detail, wall()))
            case SampleResources():
                self._sample_resources()
            case _Recover(token):
                self._apply(core.recovery_due(token, wall()))
            case ForceOpen(by, why):
                self._apply(core.force_open(by, why, wall()))
                return self.status()
            case ForceClose(by, why):
                self._apply(core.force_close(by, why, wall()))
                return self.status()
            case LedgerHistory():
                self._settle(message)
            case HaltTrading(reason, by):
                self._apply(core.halt(reason, by, wall()))
                return self.status()
            case GetBreakerStatus():
                return self.status()
            case OperatorCommand():
                return self._operator(message)
            case _:
                return super().on_receive(message)
        return None

    def _sample_resources(self) -> None:
        assert self._process is not None
        rss = int(self._process.memory_info().rss)
        cpu = float(self._process.cpu_percent(None))
        self._apply(self.core.resources_sample(rss, cpu, self.ctx.clock.wall()))
        self.ctx.schedule(self.settings.resources.interval_seconds, SampleResources())

    # -- carrying out what the core says -----------------------------------------------------
    def _apply(self, effects: tuple[Effect, ...]) -> None:
        for effect in effects:
            match effect:
                case Transitioned(event):
                    self.transitions += 1
                    self._save(event)
                    self._publish()
                    log.warning("breaker %s -> %s: %s", event.previous, event.state,
                                event.reason)
                    self.ctx.try_tell(self.settings.alerts, event)
                case Remember(publish):
                    self._save()
                    if publish:
                        self._publish()
                case RecoverAt(at, token):
                    self.ctx.schedule(max(0.0, at - self.ctx.clock.wall()), _Recover(token))
                case Tell(alert):
                    self.ctx.try_tell(self.settings.alerts, alert)

    def _publish(self) -> None:
        self.ctx.publish(self.core.gate().continuing(self.ctx.peek(self.ctx.name)))

    def _save(self, event: BreakerTransition | None = None) -> None:
        assert self._db is not None
        record = self.core.to_record()
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
        return self.core.status(self.ctx.clock.wall(), self.transitions)


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
