"""The market's lockstep pace (``pace: lockstep``): the next step only once the pipeline is
done with this one, in the backtest's order, never blocking the market's thread, and never
stalling for good.

A real market actor (the synthetic source) runs on a ManualClock with one recording actor,
``pipe``, in every role the lockstep asks: subscriber, position actor, breaker and
``lockstep_idle`` (it holds its answer to ``AwaitIdle`` until the test releases it). The
parity of a whole tree with the backtest is ``tests/run/test_parity.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pykka
import pytest
from pydantic import ValidationError

from actors.market.contract import (
    AwaitIdle,
    Bars,
    GetMarketStats,
    MarketSamples,
    MarkPrices,
    ScannedBars,
)
from actors.market.feed import MarketActor
from supervisor import ChildSpec, ManualClock, Runtime, SupervisedActor, SupervisorSpec
from supervisor.host.config import load_config
from supervisor.host.config_errors import ConfigError
from tests.support.bot_helpers import crash, settings, shipped_config, wait_until, write_config

WAIT = 10.0
TIMEOUT = 5.0  # lockstep_timeout


class Pipe(SupervisedActor):
    """Records what the market sends it, in order; holds each ``AwaitIdle`` until told
    ``"release"``."""

    accepts: ClassVar[tuple[type, ...]] = (Bars, MarkPrices, MarketSamples, ScannedBars,
                                           AwaitIdle)

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.held: list[pykka.Future[Any]] = []

    def on_receive(self, message: Any) -> Any:
        match message:
            case "log":
                return list(self.log)
            case "release":
                for reply in self.held:
                    reply.set(None)
                self.held.clear()
            case AwaitIdle():
                self.log.append("idle")
                held = self.defer_reply()
                if held is not None:
                    self.held.append(held)
            case Bars():
                self.log.append("bars")
            case MarkPrices():
                self.log.append("marks")
            case MarketSamples():
                self.log.append("samples")
        return None


def _settings(**changes: Any) -> MarketActor.Settings:
    base: dict[str, Any] = dict(
        pace="lockstep", lockstep_idle="pipe", lockstep_through=("pipe",),
        lockstep_timeout=TIMEOUT, subscribers=("pipe",), positions="pipe", breaker="pipe",
        alerts="pipe", crash_at_bar=None, clock_file=None, max_steps=5)
    return MarketActor.Settings(**(base | changes))


def _start(clock: ManualClock, market: MarketActor.Settings) -> Runtime:
    rt = Runtime(ask_timeout=WAIT, clock=clock)
    rt.start(SupervisorSpec(children=(
        ChildSpec("pipe", factory=Pipe),
        ChildSpec("market", factory=lambda: MarketActor(market)),
    )))
    return rt


def _steps(rt: Runtime) -> int:
    return int(rt.ask("market", GetMarketStats()).steps)


def _log(rt: Runtime) -> list[str]:
    return list(rt.ask("pipe", "log"))


def _waiting_in_step(rt: Runtime, clock: ManualClock, step: int, *, idle: int | None = None,
                     tick: float = 0.0) -> None:
    """Run the market's due timers (moving the clock ``tick`` a poll) until it has emitted
    ``step`` and asked ``pipe`` to be idle ``idle`` times (default: once a step)."""
    def there() -> bool:
        clock.advance(tick)
        try:  # a short ask: an actor restarting answers once its backoff has run (the clock)
            steps = rt.ask("market", GetMarketStats(), timeout=0.2).steps
            log = rt.ask("pipe", "log", timeout=0.2)
        except Exception:
            return False
        return bool(steps == step and log.count("idle") == (idle or step))

    wait_until(there, timeout=WAIT, what=f"the market waiting in step {step}")


def _after_timers(clock: ManualClock, check: Callable[[], bool]) -> bool:
    """``check()`` once the clock's due timers have run."""
    clock.advance(0.0)
    return check()


STEP = ["marks", "samples", "bars", "idle"]  # one step, in the backtest's order


def test_the_next_step_waits_until_the_pipeline_is_idle() -> None:
    clock = ManualClock()
    rt = _start(clock, _settings())
    try:
        _waiting_in_step(rt, clock, 1)
        # the marks and the samples before the bars, then the idle check; and, waiting,
        # the market still answers (its thread never blocks) and emits nothing more, long
        # after the timed pace (a step every 0.1 s) would have
        clock.advance(TIMEOUT / 2)
        assert _steps(rt) == 1 and _log(rt) == STEP
        rt.tell("pipe", "release")
        _waiting_in_step(rt, clock, 2)
        assert _log(rt) == STEP * 2
        for step in (3, 4, 5):
            rt.tell("pipe", "release")
            _waiting_in_step(rt, clock, step)
        rt.tell("pipe", "release")
        wait_until(lambda: _after_timers(clock, lambda: rt.ask("market", GetMarketStats())
                                         .finished), timeout=WAIT, what="the replay's end")
        assert _steps(rt) == 5 and _log(rt) == STEP * 5
    finally:
        rt.stop()


def test_a_step_not_done_in_time_is_logged_and_the_next_follows_at_the_timed_pace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    rt = _start(clock, _settings())
    try:
        _waiting_in_step(rt, clock, 1)
        with caplog.at_level(logging.WARNING, logger="actors.market.feed"):
            clock.advance(TIMEOUT)  # pipe never answers step 1

            def warned() -> bool:
                return any("lockstep: step 1 not done" in r.getMessage() for r in caplog.records)

            wait_until(warned, timeout=WAIT, what="the lockstep warning")
        assert "waited 5.0 s for pipe" in caplog.text
        _waiting_in_step(rt, clock, 2, tick=0.02)  # the timed pace: bar_seconds / speed
        rt.tell("pipe", "release")  # answers both the late step 1 and step 2
        _waiting_in_step(rt, clock, 3)  # and lockstep goes on
    finally:
        rt.stop()


def test_a_peer_restarted_mid_step_costs_one_late_step_not_a_stall() -> None:
    """``pipe`` crashes holding its answer (its replacement knows nothing of it): that step
    goes on after ``lockstep_timeout``; the next steps wait for the replacement again."""
    clock = ManualClock()
    rt = _start(clock, _settings())
    try:
        _waiting_in_step(rt, clock, 1)
        waited_from = clock.now()
        crash(rt, "pipe")

        def replaced() -> bool:  # its restart's backoff runs on the clock too
            clock.advance(0.05)
            try:
                return bool(rt.ask("pipe", "log", timeout=0.2) == [])
            except Exception:  # still down: the ask is not answered yet
                return False

        wait_until(replaced, timeout=WAIT, what="pipe's replacement")
        assert clock.now() - waited_from < TIMEOUT
        clock.advance(TIMEOUT - (clock.now() - waited_from))
        _waiting_in_step(rt, clock, 2, idle=1, tick=0.02)  # asked of the replacement
        clock.advance(TIMEOUT / 2)
        assert _steps(rt) == 2  # in lockstep again: waiting for the replacement's answer
        rt.tell("pipe", "release")
        wait_until(lambda: _after_timers(clock, lambda: _steps(rt) == 3), timeout=WAIT,
                   what="step 3")
    finally:
        rt.stop()


def test_a_restarted_market_ignores_its_predecessors_answers() -> None:
    """The market crashes while it waits: its replacement resumes after the last step sent
    and starts its own wait; the answer to the old instance's ask starts no step."""
    clock = ManualClock()
    rt = _start(clock, _settings())
    try:
        _waiting_in_step(rt, clock, 1)
        crash(rt, "market")
        _waiting_in_step(rt, clock, 2, tick=0.05)  # the replacement: step 2, its own idle check
        rt.tell("pipe", "release")  # answers the old instance's ask and the new one's
        _waiting_in_step(rt, clock, 3)
        clock.advance(TIMEOUT / 2)
        assert _steps(rt) == 3 and _log(rt).count("bars") == 3  # one chain, not two
    finally:
        rt.stop()


@pytest.mark.parametrize(("changes", "named"), [
    ({"lockstep_idle": None}, "lockstep_idle"),
    ({"source": "ccxt", "exchange": "binance", "symbols": ("BTC/USDT",)}, "lockstep"),
    ({"pace": "sometimes"}, "pace"),
    ({"lockstep_timeout": 0}, "lockstep_timeout"),
])
def test_bad_lockstep_settings_are_named(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        _settings(**changes)


def test_the_lockstep_peers_are_checked_with_the_tree(tmp_path: Path) -> None:
    """The shipped tree in lockstep: peers that are not there, or cannot be waited for,
    are refused before anything starts, naming the key."""
    raw = shipped_config()
    market = settings(raw, "market")
    market.update(pace="lockstep", lockstep_through=["evaluator"], lockstep_idle="executor")
    load_config(write_config(raw, tmp_path / "good.yaml"))
    market.update(lockstep_through=["nobody"], lockstep_idle="scanner")
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(raw, tmp_path / "bad.yaml"))
    text = str(refused.value)
    assert "settings.lockstep_through[0]" in text and "no actor named 'nobody'" in text
    assert "settings.lockstep_idle" in text and "does not accept AwaitIdle" in text
