"""The breaker: its state machine against a reference model (the pure core, then the
actor), OPEN stops risk but not protection, HALTED stops everything, probes are limited,
state survives restarts, the position actor's real data trips it, and a stale feed holds
it open."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.common.messages import Alert, Fill, HaltTrading, Side
from actors.market.contract import FeedHealth
from actors.portfolio.contract import EquitySample, RecordFill, TradeClosed
from actors.risk.breaker import BreakerActor
from actors.risk.contract import (
    ApiResult,
    BreakerGate,
    BreakerState,
    BreakerTransition,
    ForceClose,
    ForceOpen,
    GetBreakerStatus,
    OrderIntent,
    ProbeResult,
    SampleResources,
)
from actors.risk.effects import Effect, RecoverAt, Remember, Transitioned
from actors.risk.machine import BreakerCore
from actors.risk.transitions import allowed
from supervisor import ManualClock, Runtime
from tests.support.breaker_helpers import breaker_settings, gate, start_breaker
from tests.support.position_helpers import start_ledger

D = Decimal
OPENING = OrderIntent("BTC/USDT", reduces_exposure=False)
REDUCING = OrderIntent("BTC/USDT", reduces_exposure=True)
BASE, MULT, CAP = 60.0, 2.0, 200.0
ACTOR_EXAMPLES = 40  # the model runs 200 examples against the core above


def _status(rt: Runtime) -> Any:
    return rt.ask("breaker", GetBreakerStatus())


class _ActorDriver:
    """A real breaker actor under a runtime with a manual clock: the shell's timers,
    publishing and alerts."""

    def __init__(self, settings_: BreakerActor.Settings) -> None:
        self.clock = ManualClock()
        self.rt = start_breaker(settings_, self.clock)

    def send(self, message: object) -> None:
        if isinstance(message, ForceOpen | ForceClose | HaltTrading):
            self.rt.ask("breaker", message)
        else:
            self.rt.tell("breaker", message)
        _status(self.rt)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        _status(self.rt)

    def gate(self) -> BreakerGate:
        return gate(self.rt)

    def transitions(self) -> list[BreakerTransition]:
        return [t for t in self.rt.ask("alerts", "get") if isinstance(t, BreakerTransition)]

    def close(self) -> None:
        self.rt.stop()


class _CoreDriver:
    """The pure core alone, its effects carried out in simulated time: the gate continued
    as the actor publishes it, the recovery timers delivered when due."""

    def __init__(self, settings_: BreakerActor.Settings) -> None:
        self.clock = ManualClock()
        self.core = BreakerCore(settings_)
        self.published = self.core.gate()
        self.timers: list[RecoverAt] = []
        self.moved: list[BreakerTransition] = []

    def _apply(self, effects: tuple[Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, Transitioned):
                self.moved.append(effect.transition)
            if isinstance(effect, Transitioned | Remember):
                self.published = self.core.gate().continuing(self.published)
            if isinstance(effect, RecoverAt):
                self.timers.append(effect)

    def send(self, message: object) -> None:
        core, wall = self.core, self.clock.wall()
        match message:
            case TradeClosed(_, pnl):
                self._apply(core.trade_closed(pnl, wall))
            case FeedHealth():
                self._apply(core.feed_health(message, wall))
            case ProbeResult(ok, detail):
                self._apply(core.probe(ok, detail, wall))
            case ForceOpen(by, why):
                self._apply(core.force_open(by, why, wall))
            case ForceClose(by, why):
                self._apply(core.force_close(by, why, wall))
            case HaltTrading(reason, by):
                self._apply(core.halt(reason, by, wall))

    def advance(self, seconds: float) -> None:
        target = self.clock.wall() + seconds
        while due := sorted((t for t in self.timers if t.wall <= target),
                            key=lambda t: t.wall):
            self.timers.remove(due[0])
            self.clock.advance(max(0.0, due[0].wall - self.clock.wall()))
            self._apply(self.core.recovery_due(due[0].token, self.clock.wall()))
        self.clock.advance(target - self.clock.wall())

    def gate(self) -> BreakerGate:
        return self.published

    def transitions(self) -> list[BreakerTransition]:
        return self.moved

    def close(self) -> None:
        """Nothing to stop."""


class BreakerMachine(RuleBasedStateMachine):
    """Drives the breaker's pure core and a tiny reference model side by side."""

    driver: type[_CoreDriver | _ActorDriver] = _CoreDriver

    def __init__(self) -> None:
        super().__init__()
        directory = Path("/tmp") / f"breaker-sm-{uuid.uuid4().hex}"
        directory.mkdir()
        self.breaker = self.driver(
            breaker_settings(directory, recovery_timeout=BASE, max_recovery_timeout=CAP,
                             timeout_multiplier=MULT, half_open_max_calls=2,
                             success_threshold=2, consecutive_losses={"max_losses": 1}))
        self.clock = self.breaker.clock
        self.state = BreakerState.CLOSED
        self.manual = False
        self.trips: list[float] = []
        self.recovery_at = 0.0
        self.successes = 0
        self.stale = False  # the feed's last word

    def _model_trip(self) -> None:
        now = self.clock.wall()
        self.trips = [t for t in self.trips if t > now - 86400] + [now]
        self.recovery_at = now + min(CAP, BASE * MULT ** (len(self.trips) - 1))
        self.state, self.manual = BreakerState.OPEN, False

    @rule()
    def losing_trade(self) -> None:
        self.breaker.send(TradeClosed("BTC/USDT", D(-1)))
        if self.state in (BreakerState.CLOSED, BreakerState.HALF_OPEN):
            self._model_trip()

    @rule(seconds=st.sampled_from([1.0, 30.0, 59.0, 60.0, 120.0, 250.0]))
    def time_passes(self, seconds: float) -> None:
        target = self.clock.wall() + seconds
        # to each recovery timer in turn: a level that holds sets it again from then
        while (self.state is BreakerState.OPEN and not self.manual
               and self.recovery_at <= target):
            self.breaker.advance(max(0.0, self.recovery_at - self.clock.wall()))
            if self.stale:
                self.recovery_at = self.clock.wall() + BASE
            else:
                self.state, self.successes = BreakerState.HALF_OPEN, 0
        self.breaker.advance(target - self.clock.wall())

    @rule(stale=st.booleans())
    def feed_health(self, stale: bool) -> None:
        self.breaker.send(FeedHealth("venue:1m", stale, ("BTC/USDT",) if stale else (),
                                     None, self.clock.wall()))
        self.stale = stale
        if stale and self.state in (BreakerState.CLOSED, BreakerState.HALF_OPEN):
            self._model_trip()

    @rule(ok=st.booleans())
    def probe_result(self, ok: bool) -> None:
        self.breaker.send(ProbeResult(ok, "test"))
        if self.state is not BreakerState.HALF_OPEN:
            return
        if not ok:
            self._model_trip()
        else:
            self.successes += 1
            if self.successes >= 2:
                self.state = BreakerState.CLOSED

    @rule()
    def force_open(self) -> None:
        self.breaker.send(ForceOpen("tester", "drill"))
        self.state, self.manual = BreakerState.OPEN, True

    @rule()
    def force_close(self) -> None:
        self.breaker.send(ForceClose("tester", "drill over"))
        self.state, self.manual = BreakerState.CLOSED, False

    @rule()
    def halt(self) -> None:
        self.breaker.send(HaltTrading("drill", "tester"))
        self.state, self.manual = BreakerState.HALTED, True

    @precondition(lambda self: self.state is BreakerState.HALF_OPEN)
    @rule()
    def probes_are_limited(self) -> None:
        allowed = [self.breaker.gate().check(OPENING).allowed for _ in range(5)]
        assert allowed.count(True) <= 2

    @invariant()
    def every_transition_is_in_the_table(self) -> None:
        for t in self.breaker.transitions():
            assert allowed(BreakerState(t.previous), BreakerState(t.state)), t

    @invariant()
    def published_state_matches_the_model(self) -> None:
        assert self.breaker.gate().state is self.state

    @invariant()
    def orders_obey_the_state(self) -> None:
        g = self.breaker.gate()
        assert g.check(REDUCING).allowed is (self.state is not BreakerState.HALTED)
        if self.state in (BreakerState.OPEN, BreakerState.HALTED):
            assert not g.check(OPENING).allowed
        if self.state is BreakerState.CLOSED:
            assert g.check(OPENING).allowed

    def teardown(self) -> None:
        self.breaker.close()


class ActorBreakerMachine(BreakerMachine):
    """The same model against a real breaker actor: its timers, publishing and alerts carry
    out the core's effects as the model expects."""

    driver = _ActorDriver


TestBreakerStateMachine = BreakerMachine.TestCase
TestBreakerStateMachine.settings = settings(max_examples=200, stateful_step_count=40,
                                            deadline=None)
TestBreakerActorStateMachine = ActorBreakerMachine.TestCase
TestBreakerActorStateMachine.settings = settings(max_examples=ACTOR_EXAMPLES,
                                                 stateful_step_count=40, deadline=None)


def test_open_refuses_new_risk_but_passes_exits_and_halt_refuses_everything(
    tmp_path: Path,
) -> None:
    rt = start_breaker(breaker_settings(tmp_path, consecutive_losses={"max_losses": 2}))
    try:
        assert gate(rt).check(OPENING).allowed
        rt.tell("breaker", TradeClosed("X", D(-5)))
        rt.tell("breaker", TradeClosed("X", D(-5)))
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert "2 losing trades in a row" in status.reason
        assert dict(status.figures)["streak"] == "2"
        assert not gate(rt).check(OPENING).allowed
        assert gate(rt).check(REDUCING).allowed  # a stop-loss still goes out
        rt.ask("breaker", HaltTrading("ledger emergency reset", "positions"))
        assert not gate(rt).check(REDUCING).allowed
        assert not gate(rt).check(OPENING).allowed
        transitions = [m for m in rt.ask("alerts", "get") if isinstance(m, BreakerTransition)]
        assert [(t.previous, t.state) for t in transitions] == [
            ("closed", "open"), ("open", "halted")]
        assert transitions[1].by == "positions"
    finally:
        rt.stop()


def test_half_open_by_clock_and_exactly_n_probes_across_threads(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = start_breaker(breaker_settings(tmp_path, recovery_timeout=30, half_open_max_calls=3,
                                        api_errors={"max_consecutive": 2}), clock)
    try:
        rt.tell("breaker", ApiResult(False))
        rt.tell("breaker", ApiResult(False))
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(29)
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(1)  # no call needed: the clock moves it
        assert _status(rt).state is BreakerState.HALF_OPEN
        g = gate(rt)
        results: list[bool] = []
        lock = threading.Lock()

        def hammer() -> None:
            for _ in range(50):
                ok = g.check(OPENING).allowed
                with lock:
                    results.append(ok)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results.count(True) == 3
        rt.tell("breaker", ProbeResult(False, "order rejected"))
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert dict(status.figures)["recovery_timeout_s"] == "60"  # repeated trip: longer
    finally:
        rt.stop()


def test_open_state_survives_a_restart_of_the_process(tmp_path: Path) -> None:
    clock = ManualClock()
    settings_ = breaker_settings(tmp_path, recovery_timeout=100,
                                 drawdown={"max_percent": 10})
    rt = start_breaker(settings_, clock)
    try:
        rt.tell("breaker", EquitySample(D(1000), D(0)))
        rt.tell("breaker", EquitySample(D(880), D(0)))
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(40)
    finally:
        rt.stop()
    rt = start_breaker(settings_, clock)  # a new process: same files, same clock
    try:
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert "drawdown" in status.reason
        assert not gate(rt).check(OPENING).allowed
        assert status.measures["peak_equity"] == "1000"  # the peak survived too
        clock.advance(59)
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(1)  # the remaining 60 s of the original 100 s timeout
        assert _status(rt).state is BreakerState.HALF_OPEN
    finally:
        rt.stop()


def test_forced_open_does_not_recover_by_itself(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = start_breaker(breaker_settings(tmp_path, recovery_timeout=10), clock)
    try:
        status = rt.ask("breaker", ForceOpen("alice", "exchange maintenance"))
        assert (status.state, status.by, status.manual) == (BreakerState.OPEN, "alice", True)
        clock.advance(1000)
        assert _status(rt).state is BreakerState.OPEN
        status = rt.ask("breaker", ForceClose("alice", "maintenance over"))
        assert status.state is BreakerState.CLOSED and "maintenance over" in status.reason
    finally:
        rt.stop()


def test_level_trigger_holds_the_breaker_open_past_the_timeout(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = start_breaker(breaker_settings(
        tmp_path, recovery_timeout=10,
        exposure={"max_gross_percent": 100, "max_symbol_percent": 100}), clock)
    try:
        rt.tell("breaker", EquitySample(D(1000), D(1500), {"A": D(1500)}))
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(10)
        status = _status(rt)
        assert status.state is BreakerState.OPEN and "still open" in status.reason
        rt.tell("breaker", EquitySample(D(1000), D(500), {"A": D(500)}))  # exits reduced it
        clock.advance(10)
        assert _status(rt).state is BreakerState.HALF_OPEN
    finally:
        rt.stop()


def test_real_process_memory_from_psutil_trips_the_breaker(tmp_path: Path) -> None:
    rt = start_breaker(breaker_settings(tmp_path, resources={"max_rss_mb": 1}))
    try:
        rt.tell("breaker", SampleResources())
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert float(dict(status.figures)["rss_mb"]) > 1  # a real reading of this process
    finally:
        rt.stop()


def test_losing_trades_through_the_position_actor_open_the_breaker(tmp_path: Path) -> None:
    """The real data path: fills -> position actor -> realised PnL -> breaker."""
    rt = start_ledger(tmp_path)
    from actors.risk.breaker import BreakerActor

    settings_ = breaker_settings(tmp_path, consecutive_losses={"max_losses": 3},
                                 drawdown={"max_percent": 50})
    from supervisor import ChildSpec

    rt.terminate_child("breaker")
    rt.delete_child("breaker")
    rt.start_child("root", ChildSpec("breaker", factory=lambda: BreakerActor(settings_)))
    try:
        n = 0

        def trade(buy: str, sell: str) -> None:
            nonlocal n
            n += 1
            rt.ask("positions", RecordFill(Fill(f"b{n}", f"ob{n}", "ETH/USDT", Side.BUY,
                                                D(1), D(buy))))
            rt.ask("positions", RecordFill(Fill(f"s{n}", f"os{n}", "ETH/USDT", Side.SELL,
                                                D(1), D(sell))))

        trade("100", "90")
        trade("100", "95")
        assert _status(rt).state is BreakerState.CLOSED
        trade("100", "99")
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert dict(status.figures)["last_pnl"] == "-1"
    finally:
        rt.stop()


@pytest.mark.parametrize("trigger", ["drawdown", "daily_loss", "api_errors"])
def test_disabled_trigger_never_fires(tmp_path: Path, trigger: str) -> None:
    rt = start_breaker(breaker_settings(tmp_path))  # every trigger off
    try:
        rt.tell("breaker", EquitySample(D(1000), D(0)))
        rt.tell("breaker", EquitySample(D(1), D(0)))
        for _ in range(50):
            rt.tell("breaker", ApiResult(False))
        assert _status(rt).state is BreakerState.CLOSED
    finally:
        rt.stop()


@pytest.mark.parametrize("how", ["actor", "process"])
def test_the_days_loss_and_the_peak_survive_a_restart(tmp_path: Path, how: str) -> None:
    """A restart (of the breaker, or of the whole process) must not reset the daily loss to
    zero or the drawdown peak to the equity at restart: the breaker stays OPEN."""
    clock = ManualClock()
    settings = breaker_settings(tmp_path, recovery_timeout=10,
                                daily_loss={"max_percent": 10.0, "timezone": "UTC"},
                                drawdown={"max_percent": 50.0})
    rt = start_breaker(settings, clock)
    try:
        rt.tell("breaker", EquitySample(D(10_000), D(0)))
        rt.tell("breaker", EquitySample(D(8_900), D(0)))  # 11 % down on the day
        assert _status(rt).state is BreakerState.OPEN
        if how == "actor":
            rt.restart_child("breaker")
        else:
            rt.stop()
            rt = start_breaker(settings, clock)
        rt.tell("breaker", EquitySample(D(8_900), D(0)))  # the same equity, after restart
        clock.advance(10)
        status = _status(rt)
        assert status.state is BreakerState.OPEN, status  # the day's loss still holds it
        assert "daily loss" in status.reason
        rt.tell("breaker", EquitySample(D(5_400), D(0)))  # 46 % below the 10,000 peak
        assert _status(rt).state is BreakerState.OPEN
    finally:
        rt.stop()


def _half_open(rt: Runtime, clock: ManualClock) -> None:
    rt.tell("breaker", ApiResult(False))
    rt.tell("breaker", ApiResult(False))
    assert _status(rt).state is BreakerState.OPEN
    clock.advance(30)
    assert _status(rt).state is BreakerState.HALF_OPEN


def test_a_restart_of_the_breaker_in_half_open_hands_out_no_new_probes(tmp_path: Path) -> None:
    """A HALF_OPEN period allows ``half_open_max_calls`` probes in all: the breaker actor
    restarting (a crash, a reload) in that period must not publish a gate with a fresh set
    of probe slots while the first probe is still out."""
    clock = ManualClock()
    rt = start_breaker(breaker_settings(tmp_path, recovery_timeout=30, half_open_max_calls=1,
                                        success_threshold=2,
                                        api_errors={"max_consecutive": 2}), clock)
    try:
        _half_open(rt, clock)
        assert gate(rt).check(OPENING).allowed  # the one probe
        rt.restart_child("breaker")
        assert _status(rt).state is BreakerState.HALF_OPEN  # the same period goes on
        assert not gate(rt).check(OPENING).allowed  # no second probe
        assert gate(rt).check(REDUCING).allowed
        rt.tell("breaker", ProbeResult(True, "filled"))
        rt.restart_child("breaker")  # the good probe is remembered across a restart
        assert _status(rt).state is BreakerState.HALF_OPEN
    finally:
        rt.stop()


def test_a_new_process_finding_half_open_opens_again_until_the_recovery_timeout(
    tmp_path: Path,
) -> None:
    """The gate that counted the last process's probes is gone with it: a new process does
    not start a fresh HALF_OPEN count in the old period, it opens again."""
    clock = ManualClock()
    settings_ = breaker_settings(tmp_path, recovery_timeout=30, half_open_max_calls=1,
                                 api_errors={"max_consecutive": 2})
    rt = start_breaker(settings_, clock)
    try:
        _half_open(rt, clock)
        assert gate(rt).check(OPENING).allowed  # the probe, then the process dies
    finally:
        rt.stop()
    rt = start_breaker(settings_, clock)
    try:
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert "restarted in half-open" in status.reason
        assert not gate(rt).check(OPENING).allowed
        clock.advance(30)
        assert _status(rt).state is BreakerState.HALF_OPEN  # a new period, one new probe
        assert gate(rt).check(OPENING).allowed
        assert not gate(rt).check(OPENING).allowed
    finally:
        rt.stop()


def _stale(rt: Runtime, stale: bool, at: float = 0.0) -> None:
    rt.tell("breaker", FeedHealth("binance:1m", stale, ("BTC/USDT",) if stale else (),
                                  1000.0, at))


def test_a_stale_feed_holds_the_breaker_open_until_candles_flow_again(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = start_breaker(breaker_settings(tmp_path, recovery_timeout=30, half_open_max_calls=1,
                                        success_threshold=1), clock)
    try:
        assert gate(rt).check(OPENING).allowed
        _stale(rt, True, 1300.0)
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert status.reason.startswith("stale_data: feed binance:1m stale for BTC/USDT")
        assert dict(status.figures)["stale_symbols"] == "BTC/USDT"
        assert status.measures["stale_symbols.binance:1m"] == "BTC/USDT"
        assert not gate(rt).check(OPENING).allowed
        assert gate(rt).check(REDUCING).allowed  # exits still run on the last known price
        clock.advance(30)  # the recovery timeout: still stale, so no HALF_OPEN
        status = _status(rt)
        assert status.state is BreakerState.OPEN
        assert status.reason.startswith("still open: stale_data: feed binance:1m")
        clock.advance(30)  # held again, and the timer set again from now
        assert _status(rt).state is BreakerState.OPEN
        _stale(rt, False, 1400.0)  # fresh again: the breaker's own rules close it
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(29)
        assert _status(rt).state is BreakerState.OPEN
        clock.advance(1)
        assert _status(rt).state is BreakerState.HALF_OPEN
        assert gate(rt).check(OPENING).allowed  # the probe
        rt.tell("breaker", ProbeResult(True, "filled"))
        assert _status(rt).state is BreakerState.CLOSED
        received = rt.ask("alerts", "get")
        transitions = [(t.previous, t.state) for t in received
                       if isinstance(t, BreakerTransition)]
        assert transitions == [("closed", "open"), ("open", "half_open"),
                               ("half_open", "closed")]
        alerts = [(a.key, a.severity) for a in received if isinstance(a, Alert)]
        assert alerts == [("breaker.stale_data", "warning"),
                          ("breaker.stale_data_recovered", "info")]
    finally:
        rt.stop()


def test_a_feed_gone_stale_in_half_open_opens_it_again(tmp_path: Path) -> None:
    clock = ManualClock()
    rt = start_breaker(breaker_settings(tmp_path, recovery_timeout=30,
                                        api_errors={"max_consecutive": 2}), clock)
    try:
        _half_open(rt, clock)
        _stale(rt, True)
        status = _status(rt)
        assert status.state is BreakerState.OPEN and status.reason.startswith("stale_data")
    finally:
        rt.stop()


@pytest.mark.parametrize("how", ["actor", "process"])
def test_a_stale_feed_still_holds_after_a_restart(tmp_path: Path, how: str) -> None:
    clock = ManualClock()
    settings_ = breaker_settings(tmp_path, recovery_timeout=10)
    rt = start_breaker(settings_, clock)
    try:
        _stale(rt, True)
        assert _status(rt).state is BreakerState.OPEN
        if how == "actor":
            rt.restart_child("breaker")
        else:
            rt.stop()
            rt = start_breaker(settings_, clock)
        clock.advance(10)
        status = _status(rt)
        assert status.state is BreakerState.OPEN and "stale_data" in status.reason
        _stale(rt, False)
        clock.advance(10)
        assert _status(rt).state is BreakerState.HALF_OPEN
    finally:
        rt.stop()


def test_stale_data_switched_off_never_trips(tmp_path: Path) -> None:
    rt = start_breaker(breaker_settings(tmp_path, stale_data={"enabled": False}))
    try:
        _stale(rt, True)
        status = _status(rt)
        assert status.state is BreakerState.CLOSED
        assert not any(isinstance(m, Alert) for m in rt.ask("alerts", "get"))
    finally:
        rt.stop()


def test_stale_data_settings_are_validated(tmp_path: Path) -> None:
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="stale_data"):
        breaker_settings(tmp_path, stale_data={"enabled": False, "stale_after": 3})
    with pytest.raises(ValidationError, match="stale_data"):
        breaker_settings(tmp_path, stale_data={"enabled": "sometimes"})
