"""The exit rules (actors/execution/exit_rules.py), pure: each rule fires at its threshold
and not before, the order when several fire on one bar, the watch a bar leaves (the
high-water mark only rises), and how soon an exit is asked for again.

The numbers are powers of two and their sums, so every threshold is exact in binary: an
entry of 64 has its stop loss (25 %) at 48, its take profit (50 %) at 96, its trailing
stop active from 72 (12.5 % up), 25 % under the high-water mark. A plan (the strategy's
stop and target prices) replaces the percentage stop loss and take profit it gives a price
for; the trailing and time stops stay."""

from __future__ import annotations

import math
from itertools import pairwise

import hypothesis.strategies as st
import pytest
from hypothesis import given

from actors.execution.exit_rules import ExitPlan, ExitReason, ExitRules, Watch
from actors.market.contract import Bar

pytestmark = pytest.mark.unit

RULES = ExitRules(stop_loss_pct=25, take_profit_pct=50, trailing_pct=25,
                  trailing_activation_pct=12.5, time_stop_seconds=3600,
                  repeat_after_seconds=300)
ENTRY = 64.0
OPENED = 1000.0


def _bar(at: float, high: float, low: float, symbol: str = "A") -> Bar:
    return Bar(symbol, at, low, high, low, low, 1.0)


def _watch(high: float = ENTRY, requested_at: float | None = None) -> Watch:
    return Watch("A", ENTRY, OPENED, high, requested_at)


def _up(x: float) -> float:
    return math.nextafter(x, math.inf)


def _down(x: float) -> float:
    return math.nextafter(x, -math.inf)


# -- each rule at its threshold and not before ------------------------------------------------

def test_the_stop_loss_fires_at_its_threshold_and_not_above_it() -> None:
    assert RULES.fired(_bar(OPENED, 65, 48), _watch()) == "stop_loss"
    assert RULES.fired(_bar(OPENED, 65, 40), _watch()) == "stop_loss"
    assert RULES.fired(_bar(OPENED, 65, _up(48)), _watch()) is None


def test_the_take_profit_fires_at_its_threshold_and_not_below_it() -> None:
    # the watch's high is the bar's (the trailing stop is active, but its 25 % is far off)
    assert RULES.fired(_bar(OPENED, 96, 95), _watch(96)) == "take_profit"
    assert RULES.fired(_bar(OPENED, 100, 95), _watch(100)) == "take_profit"
    assert RULES.fired(_bar(OPENED, _down(96), 95), _watch(_down(96))) is None


def test_the_trailing_stop_fires_25_percent_under_the_high_once_active() -> None:
    # the high-water mark 80 is 25 % up (active); 25 % under it is 60
    assert RULES.fired(_bar(OPENED, 70, 60), _watch(80)) == "trailing_stop"
    assert RULES.fired(_bar(OPENED, 70, _up(60)), _watch(80)) is None


def test_the_trailing_stop_waits_for_its_activation() -> None:
    # active from a high of 72 (12.5 % up): 25 % under 72 is 54
    assert RULES.fired(_bar(OPENED, 70, 54), _watch(72)) == "trailing_stop"
    # a high just under 72: not active, however far the low falls (above the stop loss)
    assert RULES.fired(_bar(OPENED, 70, 49), _watch(_down(72))) is None


def test_the_time_stop_fires_after_its_seconds_of_market_time() -> None:
    assert RULES.fired(_bar(OPENED + 3600, 65, 63), _watch()) == "time_stop"
    assert RULES.fired(_bar(OPENED + 9999, 65, 63), _watch()) == "time_stop"
    assert RULES.fired(_bar(_down(OPENED + 3600), 65, 63), _watch()) is None


def test_no_time_stop_without_its_seconds() -> None:
    rules = ExitRules(25, 50, 25, 12.5, None, 300)
    assert rules.fired(_bar(OPENED + 10**9, 65, 63), _watch()) is None
    assert rules.fired(_bar(OPENED + 10**9, 65, 48), _watch()) == "stop_loss"


# -- several on one bar: the order -----------------------------------------------------------

LATE = OPENED + 3600  # the time stop fires on every bar below


@pytest.mark.parametrize(("high", "low", "mark", "first"), [
    (96, 48, 96, "stop_loss"),  # all four fire
    (70, 48, 80, "stop_loss"),  # stop loss, trailing stop, time stop
    (96, 60, 96, "take_profit"),  # take profit, trailing stop (72 under 96), time stop
    (96, 80, 96, "take_profit"),  # take profit, time stop
    (70, 60, 80, "trailing_stop"),  # trailing stop, time stop
    (70, 63, 80, "time_stop"),  # the time stop alone
])
def test_the_first_rule_in_order_wins_on_one_bar(
        high: float, low: float, mark: float, first: ExitReason) -> None:
    assert RULES.fired(_bar(LATE, high, low), _watch(mark)) == first


# -- the watch a bar leaves -------------------------------------------------------------------

def test_a_new_position_gets_a_watch_opened_at_the_bar_with_the_entry_as_its_high() -> None:
    watch, reason = RULES.step(None, ENTRY, _bar(OPENED, 63, 62))
    assert (watch, reason) == (Watch("A", ENTRY, OPENED, ENTRY, None), None)
    watch, _ = RULES.step(None, ENTRY, _bar(OPENED, 70, 62))
    assert watch.high == 70


def test_a_changed_entry_starts_the_watch_again() -> None:
    old = Watch("A", 50.0, 10.0, 90.0, 20.0)
    watch, reason = RULES.step(old, ENTRY, _bar(OPENED, 63, 62))
    assert (watch, reason) == (Watch("A", ENTRY, OPENED, ENTRY, None), None)


def test_a_bar_that_changes_nothing_gives_back_the_same_watch() -> None:
    was = _watch(70)
    watch, reason = RULES.step(was, ENTRY, _bar(OPENED + 60, 66, 63))
    assert watch is was and reason is None


def test_the_high_water_mark_includes_the_bar_that_fires_the_trailing_stop() -> None:
    # a bar from 80 down to 60: the mark 80 activates the stop and 60 is 25 % under it
    watch, reason = RULES.step(_watch(), ENTRY, _bar(OPENED + 60, 80, 60))
    assert (watch.high, reason) == (80, "trailing_stop")


def test_the_trailing_stop_ratchets_up_only() -> None:
    watch = _watch()
    highs = []
    for at, high in enumerate((70, 80, 75, 66, 84, 65), start=1):
        watch, _ = RULES.step(watch, ENTRY, _bar(OPENED + at, high, 64))
        highs.append(watch.high)
    assert highs == [70, 80, 80, 80, 84, 84]
    # 25 % under 84 is 63: a low of 63 fires, though every bar since 84 was lower
    watch, reason = RULES.step(watch, ENTRY, _bar(OPENED + 10, 65, 63))
    assert (watch.high, reason) == (84, "trailing_stop")


@given(st.lists(st.tuples(st.floats(1, 1000), st.floats(0, 1)), max_size=40))
def test_the_high_water_mark_is_the_highest_high_since_the_entry(
        bars: list[tuple[float, float]]) -> None:
    watch: Watch | None = None
    highest = ENTRY
    for at, (high, drop) in enumerate(bars):
        watch, _ = RULES.step(watch, ENTRY, _bar(OPENED + at, high, high * drop))
        highest = max(highest, high)
        assert watch.high == highest
        assert (watch.entry, watch.opened_at) == (ENTRY, OPENED)


# -- asking again -----------------------------------------------------------------------------

def test_an_exit_is_asked_for_again_only_after_repeat_after_seconds() -> None:
    watch, reason = RULES.step(_watch(), ENTRY, _bar(OPENED + 60, 63, 48))
    assert (watch.requested_at, reason) == (OPENED + 60, "stop_loss")
    asked = watch
    watch, reason = RULES.step(watch, ENTRY, _bar(_down(OPENED + 360), 63, 48))
    assert watch is asked and reason is None  # 300 s not over yet
    watch, reason = RULES.step(watch, ENTRY, _bar(OPENED + 360, 63, 48))
    assert (watch.requested_at, reason) == (OPENED + 360, "stop_loss")


def test_a_bar_that_fires_nothing_keeps_the_last_request() -> None:
    watch, reason = RULES.step(_watch(requested_at=OPENED + 5), ENTRY,
                               _bar(OPENED + 900, 66, 63))
    assert (watch.requested_at, reason) == (OPENED + 5, None)


@given(st.lists(st.tuples(st.floats(0, 200), st.floats(40, 100), st.floats(0, 1)),
                max_size=40))
def test_exits_are_asked_for_at_most_once_per_repeat_after_seconds(
        steps: list[tuple[float, float, float]]) -> None:
    watch: Watch | None = None
    at = OPENED
    asked: list[float] = []
    for gap, high, drop in steps:
        at += gap
        watch, reason = RULES.step(watch, ENTRY, _bar(at, high, high * drop))
        if reason is not None:
            assert watch.requested_at == at
            asked.append(at)
    assert all(later - earlier >= 300 for earlier, later in pairwise(asked))


# -- a plan: the strategy's stop and target prices ----------------------------------------------

def _planned(stop: float | None, target: float | None, high: float = ENTRY) -> Watch:
    return Watch("A", ENTRY, OPENED, high, None, stop, target)


def test_the_plans_stop_price_is_hit_by_the_low_in_place_of_the_percentage() -> None:
    assert RULES.fired(_bar(OPENED, 65, 56), _planned(56, None)) == "stop_loss"
    assert RULES.fired(_bar(OPENED, 65, _up(56)), _planned(56, None)) is None
    # a stop wider than the percentage: the percentage's 48 no longer fires
    assert RULES.fired(_bar(OPENED, 65, 48), _planned(40, None)) is None
    assert RULES.fired(_bar(OPENED, 65, 40), _planned(40, None)) == "stop_loss"


def test_the_plans_target_is_hit_by_the_high_in_place_of_the_percentage() -> None:
    # 68 is far under the percentage's 96 and under the trailing stop's activation (72)
    assert RULES.fired(_bar(OPENED, 68, 66), _planned(None, 68, 68)) == "take_profit"
    assert RULES.fired(_bar(OPENED, _down(68), 66), _planned(None, 68, _down(68))) is None
    # a target above the percentage's: 96 no longer takes the profit
    assert RULES.fired(_bar(OPENED, 96, 95), _planned(None, 112, 96)) is None
    assert RULES.fired(_bar(OPENED, 112, 95), _planned(None, 112, 112)) == "take_profit"


def test_a_plan_with_only_a_stop_keeps_the_percentage_take_profit() -> None:
    only_stop = _planned(60, None, 96)
    assert RULES.fired(_bar(OPENED, 96, 95), only_stop) == "take_profit"  # 50 % up
    assert RULES.fired(_bar(OPENED, 65, 60), _planned(60, None)) == "stop_loss"
    assert RULES.fired(_bar(OPENED, 65, 50), _planned(None, 80)) is None  # over 48
    assert RULES.fired(_bar(OPENED, 65, 48), _planned(None, 80)) == "stop_loss"


@pytest.mark.parametrize(("high", "low", "mark", "first"), [
    (80, 56, 80, "stop_loss"),  # the plan's stop, its target, trailing, time: the stop
    (80, 60, 80, "take_profit"),  # its target, trailing (60 is 25 % under 80), time
    (70, 60, 80, "trailing_stop"),  # under the target, over the stop: trailing, time
    (70, 63, 70, "time_stop"),  # the time stop alone, with a plan as without
])
def test_with_a_plan_the_trailing_and_time_stops_come_after_its_prices(
        high: float, low: float, mark: float, first: ExitReason) -> None:
    assert RULES.fired(_bar(LATE, high, low), _planned(56, 80, mark)) == first


def test_a_watch_opens_with_the_plans_prices_and_keeps_them() -> None:
    plan = ExitPlan(stop=56, target=68)
    watch, reason = RULES.step(None, ENTRY, _bar(OPENED, 63, 62), plan)
    assert (watch, reason) == (Watch("A", ENTRY, OPENED, ENTRY, None, 56, 68), None)
    # the plan is read when the watch opens: a later one (or none) leaves it as it was
    same, _ = RULES.step(watch, ENTRY, _bar(OPENED + 60, 63, 62), ExitPlan(10, 200))
    assert same is watch
    same, _ = RULES.step(watch, ENTRY, _bar(OPENED + 60, 63, 62))
    assert same is watch
    # the high reaches the target: take profit, where the percentage (96) would not
    watch, reason = RULES.step(watch, ENTRY, _bar(OPENED + 120, 68, 66))
    assert (watch.requested_at, reason) == (OPENED + 120, "take_profit")


def test_the_plans_stop_fires_in_step_where_the_percentage_would_not() -> None:
    _, reason = RULES.step(None, ENTRY, _bar(OPENED, 63, 56), ExitPlan(56, None))
    assert reason == "stop_loss"
    assert RULES.step(None, ENTRY, _bar(OPENED, 63, 56))[1] is None  # no plan: 48


def test_a_changed_entry_opens_the_watch_again_with_the_plan_given() -> None:
    old = Watch("A", 50.0, 10.0, 90.0, 20.0, 45.0, 55.0)
    watch, _ = RULES.step(old, ENTRY, _bar(OPENED, 63, 62), ExitPlan(60, None))
    assert watch == Watch("A", ENTRY, OPENED, ENTRY, None, 60, None)
    watch, _ = RULES.step(old, ENTRY, _bar(OPENED, 63, 62))
    assert watch == Watch("A", ENTRY, OPENED, ENTRY, None, None, None)


def test_an_entrys_plan_is_its_stop_under_the_signal_price_and_its_target() -> None:
    assert ExitPlan.of(64.0, 8.0, 80.0) == ExitPlan(56.0, 80.0)
    assert ExitPlan.of(64.0, 8.0, None) == ExitPlan(56.0, None)
    # no stop distance (the executor's default stop sizes it), or one at or past zero:
    # no stop price, the percentage stop loss applies
    assert ExitPlan.of(64.0, 0.0, 80.0) == ExitPlan(None, 80.0)
    assert ExitPlan.of(64.0, 64.0, None) == ExitPlan(None, None)
    assert ExitPlan.of(64.0, 100.0, None) == ExitPlan(None, None)
