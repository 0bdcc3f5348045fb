"""The breaker's pure core, in simulated time: trips and their growing recovery timeouts,
level triggers that hold it open, HALF_OPEN probes, halt, a forced close that rearms, the
start-up decisions, and the record that round-trips (today's record still loads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from actors.market.contract import FeedHealth
from actors.portfolio.contract import EquitySample, LedgerHistory
from actors.risk.contract import BreakerState, OrderIntent
from actors.risk.effects import NOTHING, Effect, RecoverAt, Remember, Tell, Transitioned
from actors.risk.machine import BreakerCore
from actors.risk.settings import BreakerRules
from tests.support.breaker_helpers import ALL_OFF
from tests.support.purity import impure_imports

pytestmark = pytest.mark.unit

D = Decimal
OPENING = OrderIntent("BTC/USDT", reduces_exposure=False)


def rules(**overrides: Any) -> BreakerRules:
    return BreakerRules.model_validate({**ALL_OFF, "stale_data": {"enabled": False},
                                        **overrides})


def moved(effects: tuple[Effect, ...]) -> list[tuple[str, str]]:
    return [(e.transition.previous, e.transition.state) for e in effects
            if isinstance(e, Transitioned)]


def timer(effects: tuple[Effect, ...]) -> RecoverAt:
    (at,) = [e for e in effects if isinstance(e, RecoverAt)]
    return at


def test_a_trip_opens_with_a_recovery_timeout_multiplied_by_the_recent_trips() -> None:
    core = BreakerCore(rules(recovery_timeout=60, timeout_multiplier=2,
                             max_recovery_timeout=200, trip_memory_seconds=1000,
                             consecutive_losses={"max_losses": 1}))
    wall = 0.0
    waits: list[float] = []
    for _ in range(4):
        effects = core.trade_closed(D(-1), wall)
        assert moved(effects) == [("closed" if not waits else "half_open", "open")]
        due = timer(effects)
        waits.append(due.wall - wall)
        assert moved(core.recovery_due(due.token, due.wall)) == [("open", "half_open")]
        wall = due.wall + 1
    assert waits == [60, 120, 200, 200]  # doubled, then capped
    assert core.status(wall, 0).trips_recently == 4
    # the trips are forgotten after trip_memory_seconds: the base timeout again
    wall += 2000
    assert timer(core.trade_closed(D(-1), wall)).wall == wall + 60


def test_a_stale_timer_and_a_trip_while_open_do_nothing() -> None:
    core = BreakerCore(rules(recovery_timeout=10, consecutive_losses={"max_losses": 1}))
    first = timer(core.trade_closed(D(-1), 0.0))
    assert core.trade_closed(D(-1), 1.0) is NOTHING  # OPEN does not trip again
    core.force_close("op", "done", 2.0)
    assert core.recovery_due(first.token, 10.0) is NOTHING  # the close cancelled it
    assert core.state is BreakerState.CLOSED


def test_a_stale_feed_holds_the_breaker_open_past_the_recovery_timeout() -> None:
    core = BreakerCore(rules(recovery_timeout=30, stale_data={"enabled": True}))
    effects = core.feed_health(FeedHealth("venue:1m", True, ("BTC/USDT",), 100.0, 400.0), 0.0)
    assert isinstance(effects[0], Tell) and effects[0].alert.key == "breaker.stale_data"
    assert moved(effects) == [("closed", "open")]
    due = timer(effects)
    held = core.recovery_due(due.token, due.wall)
    assert held[0] == Remember(publish=True)  # the reason changed: saved and published
    again = timer(held)
    assert again.wall == due.wall + 30
    assert core.state is BreakerState.OPEN and core.reason.startswith("still open: stale_data")
    fresh = core.feed_health(FeedHealth("venue:1m", False, (), 500.0, 500.0), 40.0)
    assert [e.alert.key for e in fresh if isinstance(e, Tell)] == [
        "breaker.stale_data_recovered"]
    assert Remember() in fresh  # what held it is gone: remembered
    assert moved(core.recovery_due(again.token, again.wall)) == [("open", "half_open")]


def test_the_daily_loss_holds_the_breaker_open_until_the_next_day() -> None:
    core = BreakerCore(rules(recovery_timeout=60, daily_loss={"max_percent": 10}))
    morning = datetime(2026, 12, 2, 9, 0, tzinfo=UTC).timestamp()
    assert core.equity(EquitySample(D(10_000), D(0)), morning) == (Remember(),)  # a new day
    effects = core.equity(EquitySample(D(8_900), D(0)), morning + 60)
    assert moved(effects) == [("closed", "open")]
    due = timer(effects)
    held = timer(core.recovery_due(due.token, due.wall))
    midnight = datetime(2026, 12, 3, 0, 0, tzinfo=UTC).timestamp()
    assert held.wall == midnight
    assert moved(core.recovery_due(held.token, held.wall)) == [("open", "half_open")]


def test_half_open_lets_its_probes_through_and_closes_after_enough_good_ones() -> None:
    core = BreakerCore(rules(recovery_timeout=10, half_open_max_calls=2, success_threshold=2,
                             api_errors={"max_consecutive": 1}))
    due = timer(core.api_result(False, now=5.0, wall=100.0))
    assert core.probe(True, "early", 101.0) is NOTHING  # not HALF_OPEN: a late result
    core.recovery_due(due.token, due.wall)
    gate = core.gate()
    assert (gate.state, gate.probes) == (BreakerState.HALF_OPEN, 2)
    assert [gate.check(OPENING).allowed for _ in range(3)] == [True, True, False]
    assert core.probe(True, "filled", 111.0) == (Remember(),)  # one of two
    assert moved(core.probe(True, "filled", 112.0)) == [("half_open", "closed")]
    assert core.gate().probes == 0


def test_a_failed_probe_opens_again_with_a_longer_timeout() -> None:
    core = BreakerCore(rules(recovery_timeout=10, api_errors={"max_consecutive": 1}))
    due = timer(core.api_result(False, now=0.0, wall=0.0))
    core.recovery_due(due.token, due.wall)
    effects = core.probe(False, "rejected", 11.0)
    assert moved(effects) == [("half_open", "open")]
    assert timer(effects).wall == 11.0 + 20
    assert core.status(11.0, 3).figures[-1] == ("recovery_timeout_s", "20")


def test_halt_refuses_everything_and_only_an_operator_lifts_it() -> None:
    core = BreakerCore(rules(consecutive_losses={"max_losses": 1}))
    assert moved(core.halt("impossible book", "positions", 0.0)) == [("closed", "halted")]
    assert core.manual and core.state is BreakerState.HALTED
    assert core.trade_closed(D(-1), 1.0) is NOTHING
    assert not core.gate().check(OrderIntent("X", reduces_exposure=True)).allowed
    assert moved(core.force_close("alice", "checked", 2.0)) == [("halted", "closed")]


def test_a_forced_close_rearms_the_edge_triggers() -> None:
    core = BreakerCore(rules(consecutive_losses={"max_losses": 2},
                             drawdown={"max_percent": 10}))
    core.trade_closed(D(-1), 0.0)
    core.equity(EquitySample(D(1000), D(0)), 0.0)
    core.equity(EquitySample(D(950), D(0)), 1.0)
    core.force_open("alice", "drill", 2.0)
    core.force_close("alice", "drill over", 3.0)
    status = core.status(3.0, 2)
    assert status.measures["losing_streak"] == "0"
    assert status.measures["peak_equity"] == "950"  # the peak starts again from now
    assert core.trade_closed(D(-1), 4.0) is NOTHING  # one loss of two, not two
    assert core.equity(EquitySample(D(900), D(0)), 5.0) is NOTHING  # 5.3 % below 950


def test_the_per_sample_path_allocates_nothing_while_nothing_trips() -> None:
    core = BreakerCore(rules(volatility={"max_percent": 50, "min_samples": 2},
                             liquidity={"min_volume": 10}))
    step = (("A", 100.0, 0.0, 1e6), ("B", 50.0, 0.0, 1e6))
    assert core.samples(step, 0.0) is NOTHING
    effects = core.samples((("A", 300.0, 60.0, 1e6), ("B", 500.0, 60.0, 1e6)), 60.0)
    assert moved(effects) == [("closed", "open")]  # the first trip; the second is a no-op


def test_start_up_without_state_and_the_ledgers_answer() -> None:
    core = BreakerCore(rules())
    assert core.start_without_state(5.0, "missing", "state/breaker.db") == (Remember(),)
    assert (core.state, core.manual, core.pending) == (BreakerState.OPEN, True, "missing")
    effects = core.settle(LedgerHistory(7, "ledger.db"), 6.0, "state/breaker.db")
    assert moved(effects) == [("open", "open")]
    assert [e.alert.severity for e in effects if isinstance(e, Tell)] == ["critical"]
    assert core.manual and core.pending is None
    assert core.settle(LedgerHistory(0), 7.0, "state/breaker.db") is NOTHING  # decided
    new = BreakerCore(rules())
    new.start_without_state(5.0, "missing", "state/breaker.db")
    assert new.settle(LedgerHistory(0), 6.0, "state/breaker.db") == (Remember(publish=True),)
    assert new.state is BreakerState.CLOSED and "has no history" in new.reason


def test_resuming_in_half_open_opens_again_unless_its_own_gate_is_published() -> None:
    core = BreakerCore(rules(recovery_timeout=10, api_errors={"max_consecutive": 1}))
    due = timer(core.api_result(False, now=0.0, wall=0.0))
    core.recovery_due(due.token, due.wall)
    same = BreakerCore.from_record(core.rules, core.to_record())
    assert same.resume(20.0, core.gate()) == ()  # a restart of the actor: same period
    other = BreakerCore.from_record(core.rules, core.to_record())
    effects = other.resume(20.0, None)  # a new process
    assert moved(effects) == [("half_open", "open")]
    assert timer(effects).wall == 30.0


def test_the_record_round_trips_through_json() -> None:
    r = rules(recovery_timeout=10, drawdown={"max_percent": 50},
              daily_loss={"max_percent": 10}, consecutive_losses={"max_losses": 1},
              stale_data={"enabled": True})
    core = BreakerCore(r)
    core.equity(EquitySample(D(1000), D(0)), 100.0)
    core.feed_health(FeedHealth("venue:1m", True, ("A", "B"), 50.0, 90.0), 101.0)
    record = json.loads(json.dumps(core.to_record()))
    again = BreakerCore.from_record(r, record)
    assert again.to_record() == core.to_record()
    assert again.status(101.0, 1) == core.status(101.0, 1)
    assert again.gate() == core.gate()


TODAYS_RECORD = {  # the record the breaker actor wrote before its core was split out
    "state": "open", "reason": "drawdown: drawdown 12% from peak 1000 (limit 10%)",
    "by": "breaker", "since": 1000.0, "manual": False, "recovery_at": 1100.0,
    "figures": [["equity", "880"], ["peak", "1000"], ["recovery_timeout_s", "100"]],
    "trip_times": [1000.0], "peak": "1000", "day": "1970-01-01",
    "day_start_equity": "1000", "pending": None, "successes": 0,
    "stale": {"venue:1m": [["BTC/USDT"], 900.0, 990.0]},
}


def test_todays_record_loads_into_the_core() -> None:
    r = rules(drawdown={"max_percent": 10}, daily_loss={"max_percent": 50},
              stale_data={"enabled": True})
    core = BreakerCore.from_record(r, TODAYS_RECORD)
    assert json.loads(json.dumps(core.to_record())) == TODAYS_RECORD
    status = core.status(1050.0, 1)
    assert (status.state, status.recovery_at, status.trips_recently) == (
        BreakerState.OPEN, 1100.0, 1)
    assert status.measures["peak_equity"] == "1000"
    assert status.measures["stale_symbols.venue:1m"] == "BTC/USDT"


@pytest.mark.parametrize(("key", "value", "error"), [
    ("state", "ajar", ValueError), ("figures", 3, TypeError), ("since", None, KeyError)])
def test_a_damaged_record_raises_for_the_actor_to_move_aside(
    key: str, value: object, error: type[Exception],
) -> None:
    record = {k: v for k, v in TODAYS_RECORD.items() if k != key}
    if value is not None:
        record[key] = value
    with pytest.raises(error):
        BreakerCore.from_record(rules(), record)


@pytest.mark.parametrize("module", ["actors.risk.machine", "actors.risk.trigger_set",
                                    "actors.risk.effects", "actors.risk.settings",
                                    "actors.risk.triggers", "actors.risk.market_triggers",
                                    "actors.risk.transitions"])
def test_the_core_reads_no_clock_file_or_process(module: str) -> None:
    assert impure_imports(module) == set()
