"""The circuit breaker's pure core: its state record, its triggers and its recovery timing.

:class:`BreakerCore` is the one owner of the breaker's state: every input (a market step's
samples, equity, a closed trade, an API result, a feed's health, a probe result, a recovery
timer, an operator's verb, the ledger's history) takes its time explicitly and returns the
effects its caller must carry out, in order (:mod:`actors.risk.effects`). Every change of state goes
through the table in :mod:`actors.risk.transitions`. No actor, thread, clock or file: the
breaker actor wraps it with SQLite, timers and publishing, and a backtest calls it in
simulated time. The record it persists (:meth:`BreakerCore.to_record`) is the JSON the
breaker's state file holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from actors.common.messages import Alert
from actors.market.contract import FeedHealth
from actors.portfolio.contract import EquitySample, LedgerHistory
from actors.risk.contract import BreakerGate, BreakerState, BreakerStatus, BreakerTransition
from actors.risk.effects import NOTHING, Effect, RecoverAt, Remember, Tell, Transitioned
from actors.risk.settings import BreakerRules
from actors.risk.transitions import BreakerEvent, next_state, permits
from actors.risk.trigger_set import TriggerSet
from actors.risk.triggers import Trip

__all__ = ["BreakerCore"]


_REMEMBER = Remember()
_REPUBLISH = Remember(publish=True)


@dataclass
class _Record:
    state: BreakerState = BreakerState.CLOSED
    reason: str = "initial state"
    by: str = "breaker"
    since: float = 0.0
    manual: bool = False
    recovery_at: float | None = None
    figures: tuple[tuple[str, str], ...] = ()
    trip_times: tuple[float, ...] = ()
    # the state was lost (how, e.g. "missing"): held OPEN until the ledger answers
    pending: str | None = None
    successes: int = 0  # good probes in this HALF_OPEN period


class BreakerCore:
    """Owns the breaker's state record, its triggers (a :class:`TriggerSet` built from
    ``rules``) and the recovery token; starts CLOSED ("initial state")."""

    def __init__(self, rules: BreakerRules) -> None:
        self.rules = rules
        self.triggers = TriggerSet(rules)
        self._r = _Record()
        self._token = 0

    # -- what it says --------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        return self._r.state

    @property
    def manual(self) -> bool:
        return self._r.manual

    @property
    def pending(self) -> str | None:
        """How the state was lost, while the breaker waits for the ledger's answer."""
        return self._r.pending

    @property
    def recovery_at(self) -> float | None:
        return self._r.recovery_at

    @property
    def reason(self) -> str:
        return self._r.reason

    def gate(self) -> BreakerGate:
        """The gate for the current state (the caller continues the published one's probe
        slots with :meth:`BreakerGate.continuing`)."""
        r = self._r
        probes = self.rules.half_open_max_calls if r.state is BreakerState.HALF_OPEN else 0
        return BreakerGate(r.state, r.reason, r.since, probes)

    def status(self, wall: float, transitions: int) -> BreakerStatus:
        """The state and what the triggers measure now (``transitions``: how many the state
        file records)."""
        r = self._r
        return BreakerStatus(
            state=r.state, reason=r.reason, by=r.by, since=r.since, manual=r.manual,
            recovery_at=r.recovery_at,
            trips_recently=sum(1 for t in r.trip_times
                               if t > wall - self.rules.trip_memory_seconds),
            figures=r.figures, measures=self.triggers.measures(), transitions=transitions,
        )

    # -- persistence ---------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """The state and the triggers' memory, as the JSON object the state file holds."""
        r = self._r
        peak, day, start = self.triggers.memory()
        return {
            "state": r.state.value, "reason": r.reason, "by": r.by, "since": r.since,
            "manual": r.manual, "recovery_at": r.recovery_at, "figures": list(r.figures),
            "trip_times": list(r.trip_times), "peak": str(peak) if peak is not None else None,
            "day": day, "day_start_equity": str(start) if start is not None else None,
            "pending": r.pending, "successes": r.successes,
            "stale": self.triggers.stale_record(),
        }

    @classmethod
    def from_record(cls, rules: BreakerRules, record: dict[str, Any]) -> BreakerCore:
        """A core with the state of :meth:`to_record`'s ``record``; a damaged record raises
        ``KeyError``, ``ValueError`` or ``TypeError``."""
        core = cls(rules)
        core._r = _Record(
            state=BreakerState(record["state"]), reason=record["reason"], by=record["by"],
            since=record["since"], manual=record["manual"], recovery_at=record["recovery_at"],
            figures=tuple((str(k), str(v)) for k, v in record["figures"]),
            trip_times=tuple(record["trip_times"]), pending=record.get("pending"),
            successes=int(record.get("successes") or 0),
        )
        core.triggers.restore(record)
        return core

    # -- starting ------------------------------------------------------------------------------
    def start_without_state(self, wall: float, lost: str | None,
                            state_file: str) -> tuple[Effect, ...]:
        """There was no record to restore: CLOSED, or (``lost``: how it was lost) OPEN,
        "state unknown", held until :meth:`settle` hears from the ledger."""
        self._r = r = _Record(since=wall)
        if lost is not None:
            r.state, r.manual, r.pending = BreakerState.OPEN, True, lost
            r.reason = (f"state unknown: {state_file} {lost}; held open until the "
                        "ledger says whether it has history")
        return (_REMEMBER,)

    def settle(self, history: LedgerHistory, wall: float, state_file: str) -> tuple[Effect, ...]:
        """The ledger answered (``seq`` -1: it could not be asked): a new deployment closes;
        lost state with history is held open until an operator closes it."""
        lost = self._r.pending
        if lost is None or self._r.state is not BreakerState.OPEN:
            return NOTHING
        where = history.database or "the ledger"
        if history.seq == 0:  # a new deployment: nothing to protect, nothing was lost
            self._r = _Record(reason=f"initial state (no breaker state: {lost}; "
                                     f"{where} has no history)", since=wall)
            if not lost.startswith("damaged"):
                return (_REPUBLISH,)
            return (_REPUBLISH, Tell(Alert(
                "breaker.state_lost", "warning", "Breaker state damaged",
                f"{state_file} was {lost}; the ledger has no history, so "
                "the breaker starts closed")))
        history_text = ("has history" if history.seq > 0 else "could not be asked")
        reason = (f"breaker state lost ({state_file} {lost}) while {where} "
                  f"{history_text}: held open (exits only) until an operator closes it "
                  "(botvisor breaker close)")
        return (self._transition(BreakerEvent.STATE_LOST, reason, wall),
                Tell(Alert("breaker.state_lost", "critical", "Breaker state lost: held open",
                           reason)))

    def resume(self, wall: float, published: object) -> tuple[Effect, ...]:
        """Carry on from a restored record. ``published``: the gate in force (a restart of
        the actor in the same process), or None. A HALF_OPEN period ``published`` does not
        hold was this process's predecessor's, whose probes are not known: open again until
        the recovery timeout. An OPEN not held by hand schedules its recovery."""
        out: list[Effect] = []
        r = self._r
        if r.state is BreakerState.HALF_OPEN and not (
                isinstance(published, BreakerGate) and published.state is BreakerState.HALF_OPEN
                and published.since == r.since):
            r.recovery_at = wall + self.rules.recovery_timeout
            out.append(self._transition(BreakerEvent.RESTARTED_HALF_OPEN,
                                        "restarted in half-open: the probes already sent "
                                        "are not known; open again until the recovery timeout",
                                        wall))
        if r.state is BreakerState.OPEN and not r.manual:
            out.append(self._recover_at(wall))
        return tuple(out)

    # -- inputs --------------------------------------------------------------------------------
    def samples(self, samples: Sequence[tuple[str, float, float, float]],
                wall: float) -> tuple[Effect, ...]:
        """One market step: per bar ``(symbol, price, at, quote volume)``, its price sample
        and then its volume sample."""
        triggers = self.triggers
        volatility, liquidity = triggers.volatility, triggers.liquidity
        hot = None if volatility is None else volatility.on_prices(samples)
        thin = None if liquidity is None else liquidity.on_volumes(samples)
        if hot is None and thin is None:
            return NOTHING
        # in the samples' order, a bar's price trip before its volume trip
        fired = sorted([(i, 0, trip) for i, trip in hot or ()]
                       + [(i, 1, trip) for i, trip in thin or ()], key=lambda f: f[:2])
        out = NOTHING
        for _, _, trip in fired:
            out += self._maybe_trip(trip, wall)
        return out

    def price(self, symbol: str, price: float, at: float, wall: float) -> tuple[Effect, ...]:
        if self.triggers.volatility is None:
            return NOTHING
        return self._maybe_trip(self.triggers.volatility.on_price(symbol, price, at), wall)

    def volume(self, symbol: str, volume: float, wall: float) -> tuple[Effect, ...]:
        if self.triggers.liquidity is None:
            return NOTHING
        return self._maybe_trip(self.triggers.liquidity.on_volume(symbol, volume), wall)

    def trade_closed(self, pnl: Decimal, wall: float) -> tuple[Effect, ...]:
        if self.triggers.losses is None:
            return NOTHING
        return self._maybe_trip(self.triggers.losses.on_trade(pnl), wall)

    def api_result(self, ok: bool, *, now: float, wall: float) -> tuple[Effect, ...]:
        """An API call's outcome at monotonic ``now`` (the error window's time)."""
        if self.triggers.api is None:
            return NOTHING
        return self._maybe_trip(self.triggers.api.on_call(ok, now), wall)

    def resources_sample(self, rss_bytes: int, cpu_percent: float,
                         wall: float) -> tuple[Effect, ...]:
        if self.triggers.resources is None:
            return NOTHING
        return self._maybe_trip(self.triggers.resources.on_sample(rss_bytes, cpu_percent), wall)

    def equity(self, sample: EquitySample, wall: float) -> tuple[Effect, ...]:
        """The account now: a new peak or a new day is remembered; the first trigger of
        drawdown, daily loss, exposure and liquidity that fires trips (each sees it)."""
        triggers = self.triggers
        drawdown, daily = triggers.drawdown, triggers.daily
        equity = sample.equity
        trip: Trip | None = None
        remembered = False
        if drawdown is not None:
            peak = drawdown.peak
            trip = drawdown.on_equity(equity)
            remembered = drawdown.peak is not peak  # replaced only by a higher one
        if daily is not None:
            day = daily.day
            second = daily.on_equity(equity, wall)
            trip = trip or second
            remembered = remembered or daily.day != day  # the day's start equity with it
        out = (_REMEMBER,) if remembered else NOTHING  # survives a restart
        if triggers.exposure is not None:
            second = triggers.exposure.on_exposure(equity, sample.gross_exposure,
                                                   sample.exposure_by_symbol)
            trip = trip or second
        if triggers.liquidity is not None:
            held = {s for s, v in sample.exposure_by_symbol.items() if v > 0}
            second = triggers.liquidity.on_holdings(held)
            trip = trip or second
        if trip is not None:
            return out + self._maybe_trip(trip, wall)
        return out

    def feed_health(self, health: FeedHealth, wall: float) -> tuple[Effect, ...]:
        """A live feed's staleness: trips (a level) when it is stale, an alert when it goes
        stale and when it is fresh again; the breaker closes then by its normal rules."""
        stale = self.triggers.stale
        if stale is None:
            return NOTHING
        was = health.source in stale.stale
        before = dict(stale.stale)
        trip = stale.on_health(health.source, health.stale, health.stale_symbols,
                               health.last_closed_at, health.at)
        out: tuple[Effect, ...] = NOTHING
        if trip is not None and not was:
            out = (Tell(Alert(
                "breaker.stale_data", "warning", f"Market feed {health.source} is stale",
                f"{trip.reason}; new positions are refused while it lasts, exits still run")),)
        elif trip is None and was:
            out = (Tell(Alert(
                "breaker.stale_data_recovered", "info",
                f"Market feed {health.source} is fresh again",
                "closed candles flow again; the breaker closes by its recovery timeout and "
                "probes")),)
        tripped = self._maybe_trip(trip, wall)
        if not tripped and stale.stale != before:
            return (*out, _REMEMBER)  # what holds the breaker must survive a restart
        return out + tripped

    def probe(self, ok: bool, detail: str, wall: float) -> tuple[Effect, ...]:
        """A HALF_OPEN probe order's outcome (a late one, in another state, is ignored)."""
        if not self._permits(BreakerEvent.PROBES_PASSED):
            return NOTHING
        if not ok:
            return self._trip(Trip("probe", f"probe order failed: {detail}",
                                   (("detail", detail),)), wall)
        self._r.successes += 1
        if self._r.successes >= self.rules.success_threshold:
            return (self._transition(BreakerEvent.PROBES_PASSED,
                                     f"{self._r.successes} successful probe(s) in half-open",
                                     wall),)
        return (_REMEMBER,)

    def recovery_due(self, token: int, wall: float) -> tuple[Effect, ...]:
        """A :class:`RecoverAt` came due: HALF_OPEN, unless a level trigger holds (then the
        timer is set again: to the next day for the daily loss)."""
        if token != self._token or not self._permits(BreakerEvent.RECOVERY_TIMEOUT):
            return NOTHING  # a stale timer; or closed, or held by hand
        holds = self.triggers.holding(wall)
        if not self._permits(BreakerEvent.RECOVERY_TIMEOUT, holding=bool(holds)):
            wait = self.rules.recovery_timeout
            if self.triggers.daily is not None and self.triggers.daily.holding(wall):
                wait = max(1.0, self.triggers.daily.next_day_start(wall) - wall)
            self._r.recovery_at = wall + wait
            self._r.reason = f"still open: {'; '.join(holds)}"
            return (_REPUBLISH, self._recover_at(wall))
        self.triggers.rearm()
        return (self._transition(BreakerEvent.RECOVERY_TIMEOUT,
                                 f"recovery timeout passed; {self.rules.half_open_max_calls} "
                                 "probe order(s) allowed", wall, holding=bool(holds)),)

    def force_open(self, by: str, why: str, wall: float) -> tuple[Effect, ...]:
        return (self._transition(BreakerEvent.FORCE_OPEN, f"forced open: {why}", wall, by=by),)

    def force_close(self, by: str, why: str, wall: float) -> tuple[Effect, ...]:
        """Closed by hand: the edge triggers start again from now."""
        self.triggers.rearm()
        return (self._transition(BreakerEvent.FORCE_CLOSE, f"forced closed: {why}", wall,
                                 by=by),)

    def halt(self, reason: str, by: str, wall: float) -> tuple[Effect, ...]:
        return (self._transition(BreakerEvent.HALT, f"halted: {reason}", wall, by=by),)

    # -- the state machine ---------------------------------------------------------------------
    def _maybe_trip(self, trip: Trip | None, wall: float) -> tuple[Effect, ...]:
        if trip is not None and self._permits(BreakerEvent.TRIP):
            return self._trip(trip, wall)
        return NOTHING

    def _trip(self, trip: Trip, wall: float) -> tuple[Effect, ...]:
        """OPEN, with a recovery timeout multiplied for each trip still remembered."""
        rules = self.rules
        recent = [t for t in self._r.trip_times if t > wall - rules.trip_memory_seconds]
        recent.append(wall)
        self._r.trip_times = tuple(recent)
        timeout = min(rules.max_recovery_timeout,
                      rules.recovery_timeout * rules.timeout_multiplier ** (len(recent) - 1))
        self._r.recovery_at = wall + timeout
        moved = self._transition(BreakerEvent.TRIP, f"{trip.trigger}: {trip.reason}", wall,
                                 figures=(*trip.figures, ("recovery_timeout_s", f"{timeout:g}")))
        return (moved, self._recover_at(wall))

    def _recover_at(self, wall: float) -> RecoverAt:
        self._token += 1
        at = self._r.recovery_at
        return RecoverAt(at if at is not None else wall, self._token)

    def _permits(self, what: BreakerEvent, *, holding: bool = False) -> bool:
        return permits(self._r.state, what, manual=self._r.manual, holding=holding)

    def _transition(self, what: BreakerEvent, reason: str, wall: float, *, by: str = "breaker",
                    figures: tuple[tuple[str, str], ...] = (),
                    holding: bool = False) -> Transitioned:
        """Apply ``what`` by the table: an event it does not allow from the current state
        raises IllegalTransition, and nothing changes."""
        r = self._r
        previous = r.state
        rule = next_state(previous, what, manual=r.manual, holding=holding)
        state = rule.target
        r.state, r.reason, r.by = state, reason, by
        r.since, r.manual, r.figures = wall, rule.manual, figures
        r.pending = None  # a transition decides the state
        if state is not BreakerState.OPEN:
            r.recovery_at = None
            self._token += 1  # cancels a pending recovery
        r.successes = 0  # a new state, a new count of good probes
        return Transitioned(BreakerTransition(previous.value, state.value, reason, figures, by,
                                              wall))
