"""The exits actor: what it publishes for a restarted instance, that a restarted
instance keeps the trailing stop's high-water mark, and that a position's watch takes its
entry's exit plan from the executor's published state (and keeps it across a restart);
without one, the percentage rules apply and that is logged.

Real actors: the exits actor; a stand-in for the position actor that publishes the
snapshots the test gives it; a stand-in for the executor that keeps the exit requests (and
publishes the ``ExecutorState`` it is given).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pykka.messages import ProxyGetAttr

from actors.execution.contract import ExitRequest
from actors.execution.exit_rules import ExitPlan
from actors.execution.exits import ExitsActor, ExitWatches
from actors.execution.state import ExecutorState
from actors.market.contract import Bar, Bars
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.standins import Collector, Ledger, Publish, snapshot


def _bar(symbol: str, at: float, high: float, low: float) -> Bar:
    return Bar(symbol, at, low, high, low, low, 1e6)


class PlanningExecutor(Collector):
    """Keeps the exit requests; publishes each ``ExecutorState`` it is told."""

    def __init__(self) -> None:
        super().__init__(ExitRequest)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ExecutorState):
            self.ctx.publish(message)
            return None
        return super().on_receive(message)


def _plans(*plans: tuple[str, ExitPlan]) -> ExecutorState:
    return ExecutorState(None, plans=tuple((s, f"bv-{s}", p) for s, p in plans))


def _tree() -> Runtime:
    # stop 3 %, trailing 2 % once 1.5 % up (the shipped rules); take profit out of the way
    settings = ExitsActor.Settings(stop_loss_pct=3, take_profit_pct=20, trailing_pct=2,
                                   trailing_activation_pct=1.5, time_stop_seconds=None)
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("positions", factory=Ledger),
        ChildSpec("executor", factory=PlanningExecutor),
        ChildSpec("exits", factory=lambda: ExitsActor(settings)),
    )))
    return rt


def _watches(rt: Runtime) -> dict[str, tuple[float, float, float, float | None]]:
    rt.ask("exits", ProxyGetAttr(attr_path=("requests",)))  # every bar told is handled
    published = rt.peek("exits")
    assert isinstance(published, ExitWatches)
    return {row[0]: row[1:5] for row in published.watches}  # entry, opened, high, asked


def _levels(rt: Runtime) -> dict[str, tuple[float | None, float | None]]:
    """The published watches' plan prices: (stop, target) by symbol."""
    _watches(rt)
    published = rt.peek("exits")
    assert isinstance(published, ExitWatches)
    return {row[0]: (row[5], row[6]) for row in published.watches}


def _requests(rt: Runtime) -> list[tuple[str, str, float]]:
    rt.ask("exits", ProxyGetAttr(attr_path=("requests",)))  # every bar told is handled
    got = rt.ask("executor", ProxyGetAttr(attr_path=("got",)))
    return [(r.symbol, r.reason, r.at) for r in got]


def test_published_watches_follow_highs_requests_and_closed_positions() -> None:
    rt = _tree()
    try:
        rt.ask("positions", Publish(snapshot(1, {"A": ("1", 100.0), "B": ("2", 50.0)})))
        rt.tell("exits", Bars((_bar("A", 60, 101, 100.5), _bar("B", 60, 50.2, 50.1))))
        assert _watches(rt) == {"A": (100.0, 60, 101, None), "B": (50.0, 60, 50.2, None)}
        rt.tell("exits", Bars((_bar("A", 120, 104, 103.9),)))  # a new high; no rule fires
        rt.tell("exits", Bars((_bar("A", 180, 103, 101.5),)))  # 2 % under 104: trailing
        assert _requests(rt) == [("A", "trailing_stop", 180)]
        assert _watches(rt) == {"A": (100.0, 60, 104, 180), "B": (50.0, 60, 50.2, None)}
        rt.ask("positions", Publish(snapshot(2, {"B": ("2", 50.0)})))  # A was sold
        rt.tell("exits", Bars((_bar("B", 240, 50.3, 50.2),)))
        assert _watches(rt) == {"B": (50.0, 60, 50.3, None)}
    finally:
        rt.stop()


def test_a_restarted_exits_actor_keeps_the_high_water_mark() -> None:
    """A rose to 110 before the restart; 107.5 after it is more than 2 % under 110, so the
    trailing stop fires (a restart that forgot the high would not see it: 107.5 is above
    the 1.5 % activation and below any high seen since)."""
    rt = _tree()
    try:
        rt.ask("positions", Publish(snapshot(1, {"A": ("1", 100.0)})))
        rt.tell("exits", Bars((_bar("A", 60, 110, 109),)))
        assert _watches(rt)["A"][2] == 110
        rt.restart_child("exits")
        rt.tell("exits", Bars((_bar("A", 120, 108, 107.5),)))
        assert _requests(rt) == [("A", "trailing_stop", 120)]
    finally:
        rt.stop()


def test_a_positions_watch_takes_its_entrys_plan_from_the_executor() -> None:
    """A (entry 100) has a target of 101, B (entry 50) a stop of 49.5: each fires where the
    percentage rules (take profit 20 %, stop 3 %, trailing from 1.5 % up) would not."""
    rt = _tree()
    try:
        rt.ask("executor", _plans(("A/USDT", ExitPlan(None, 101.0)),
                                  ("B/USDT", ExitPlan(49.5, None))))
        rt.ask("positions", Publish(snapshot(1, {"A/USDT": ("1", 100.0),
                                                 "B/USDT": ("2", 50.0)})))
        rt.tell("exits", Bars((_bar("A/USDT", 60, 100.5, 100), _bar("B/USDT", 60, 50.2, 50))))
        assert _levels(rt) == {"A/USDT": (None, 101.0), "B/USDT": (49.5, None)}
        assert _requests(rt) == []
        rt.tell("exits", Bars((_bar("A/USDT", 120, 101, 100.2),
                               _bar("B/USDT", 120, 50, 49.5))))
        assert _requests(rt) == [("A/USDT", "take_profit", 120), ("B/USDT", "stop_loss", 120)]
    finally:
        rt.stop()


def test_a_restarted_exits_actor_keeps_each_positions_plan() -> None:
    """The executor forgets A's plan (its sale filled, say) while A is still in the
    snapshot; the restarted exits actor still has it from its own published watches."""
    rt = _tree()
    try:
        rt.ask("executor", _plans(("A/USDT", ExitPlan(99.0, 101.0))))
        rt.ask("positions", Publish(snapshot(1, {"A/USDT": ("1", 100.0)})))
        rt.tell("exits", Bars((_bar("A/USDT", 60, 100.5, 100),)))
        assert _levels(rt) == {"A/USDT": (99.0, 101.0)}
        rt.ask("executor", _plans())
        rt.restart_child("exits")
        rt.tell("exits", Bars((_bar("A/USDT", 120, 101, 100.2),)))
        assert _requests(rt) == [("A/USDT", "take_profit", 120)]
        assert _levels(rt) == {"A/USDT": (99.0, 101.0)}
    finally:
        rt.stop()


def test_without_a_plan_the_percentage_rules_apply_and_that_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """No plan published for A (a position from before this process): its stop is the
    percentage's, 3 % under 100, and the exits actor says so once, when its watch opens."""
    rt = _tree()
    try:
        with caplog.at_level(logging.WARNING, logger="actors.execution.exits"):
            rt.ask("executor", _plans(("B/USDT", ExitPlan(40.0, 60.0))))
            rt.ask("positions", Publish(snapshot(1, {"A/USDT": ("1", 100.0)})))
            rt.tell("exits", Bars((_bar("A/USDT", 60, 100.5, 99),)))
            rt.tell("exits", Bars((_bar("A/USDT", 120, 100, 97),)))
            assert _requests(rt) == [("A/USDT", "stop_loss", 120)]
        assert _levels(rt) == {"A/USDT": (None, None)}
        warned = [r.getMessage() for r in caplog.records if "no exit plan" in r.getMessage()]
        assert len(warned) == 1 and "A/USDT" in warned[0], warned
    finally:
        rt.stop()
