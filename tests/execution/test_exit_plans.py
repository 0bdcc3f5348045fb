"""The executor keeps the exit plan of each symbol's last entry (its strategy's stop and
target prices) in its published state: an entry's plan is there once it is placed, it
stays across a restart of the executor, a filled sale forgets it (the position is closed),
an entry that ends without a fill forgets it, and the next entry brings its own.

Real actors: the executor, the breaker, the paper exchange and the position actor.
"""

from __future__ import annotations

from pathlib import Path

from actors.common.messages import Side
from actors.execution.contract import ExecutorStats, GetExecutorStats, client_order_id
from actors.execution.exit_rules import ExitPlan
from actors.execution.state import ExecutorState
from actors.portfolio.contract import PortfolioSnapshot
from actors.portfolio.positions import PositionActor
from actors.strategies.contract import Signal
from supervisor import Runtime
from tests.support.bot_helpers import wait_until
from tests.support.executor_helpers import WAIT, bars, shared_tree

A, B = "AAA/USDT", "BBB/USDT"


def _entry(symbol: str, at: float, stop_distance: float, take_profit: float | None) -> Signal:
    return Signal(f"test:{symbol}:{at:g}:buy", "test", symbol, Side.BUY, 100.0, at,
                  "a test", stop_distance, take_profit)


def _sale(symbol: str, at: float) -> Signal:
    return Signal(f"test:{symbol}:{at:g}:sell", "test", symbol, Side.SELL, 100.0, at, "a test")


def _settled(rt: Runtime) -> ExecutorStats:
    stats = rt.ask("executor", GetExecutorStats())  # once nothing is out or held
    assert isinstance(stats, ExecutorStats)
    return stats


def _plans(rt: Runtime) -> dict[str, tuple[str, ExitPlan]]:
    state = rt.peek("executor")
    assert isinstance(state, ExecutorState), state
    return {symbol: (coid, plan) for symbol, coid, plan in state.plans}


def _held(rt: Runtime) -> set[str]:
    snap = rt.peek("positions")
    return set(snap.positions) if isinstance(snap, PortfolioSnapshot) else set()


def test_an_entrys_plan_is_published_kept_across_a_restart_and_forgotten_when_sold(
        tmp_path: Path) -> None:
    rt = shared_tree(tmp_path, PositionActor)
    try:
        rt.tell("exchange", bars((A, 100)))
        first = _entry(A, 60, 2.0, 104.0)
        rt.tell("executor", first)
        assert _settled(rt).filled == 1 and _held(rt) == {A}
        plan = (client_order_id(first.signal_id), ExitPlan(98.0, 104.0))
        assert _plans(rt) == {A: plan}

        rt.restart_child("executor")  # the replacement starts from the published state
        assert _settled(rt).venue_synced
        assert _plans(rt) == {A: plan}

        rt.tell("executor", _sale(A, 120))
        assert _settled(rt).filled == 1  # this instance's one order: the sale
        wait_until(lambda: not _held(rt), timeout=WAIT, what="the sale in the ledger")
        assert _plans(rt) == {}

        second = _entry(A, 180, 5.0, None)  # the next entry: its own plan, stop only
        rt.tell("executor", second)
        assert _settled(rt).filled == 2
        assert _plans(rt) == {A: (client_order_id(second.signal_id), ExitPlan(95.0, None))}
    finally:
        rt.stop()


def test_an_entry_that_ends_without_a_fill_leaves_no_plan(tmp_path: Path) -> None:
    """The exchange has no price for B yet and rejects its buy; A's plan stays."""
    rt = shared_tree(tmp_path, PositionActor)
    try:
        rt.tell("exchange", bars((A, 100)))
        held = _entry(A, 60, 2.0, None)
        rt.tell("executor", held)
        rt.tell("executor", _entry(B, 60, 2.0, 110.0))
        stats = _settled(rt)
        assert (stats.orders, stats.filled) == (2, 1)
        assert _plans(rt) == {A: (client_order_id(held.signal_id), ExitPlan(98.0, None))}
    finally:
        rt.stop()
