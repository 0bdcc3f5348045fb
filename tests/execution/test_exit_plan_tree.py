"""A strategy's take-profit closes its position at the target, in the shipped tree, where
the exits' percentage rules would not yet; and so it does after a restart of the exits
actor and of the executor between the entry and the target.

The shipped tree is built in-process from a copy of ``config.yaml`` (state files in the
test's directory, the built-in market stopped after one step, ``max_steps: 1``), its
evaluator running only ``tests.execution.planned:Planned`` on BTC/USDT; the test drives
BTC/USDT through the market's ``FeedBars`` input, one bar per message, as a live feed
does. Planned enters on a close of 30,150 (0.5 % over the base) with a target 1 % over
it (30,451.5); the shipped exits take the profit only 6 % over the entry, and start the
trailing stop only 1.5 % over it: the bar that reaches the target fires neither.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.common.messages import Side
from actors.execution.exit_rules import ExitPlan, ExitRules, Watch
from actors.execution.state import ExecutorState
from actors.market.contract import Bar, FeedBars
from actors.portfolio.contract import PortfolioSnapshot
from supervisor import Runtime
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    bar_time,
    drain_pipeline,
    executor_stats,
    ledger_fills,
    market_stats,
    redirect_state,
    settings,
    shipped_config,
    start_tree,
    venue_fills,
    wait_until,
    write_config,
)

WAIT = 20.0
SYMBOL = "BTC/USDT"
BASE = 30_000.0  # the synthetic market's BTC/USDT starts here
TRIGGER = BASE * 1.005  # Planned's entry close
TARGET = TRIGGER * 1.01  # its take-profit


class Feed:
    """Owns the test's BTC/USDT price path: one bar a minute after the synthetic first bar,
    each told to the market as its own FeedBars."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.index = 0
        self.last = BASE
        self.sent: list[Bar] = []

    def send(self, *closes: float) -> list[Bar]:
        bars = []
        for close in closes:
            self.index += 1
            open_, self.last = self.last, close
            bars.append(Bar(SYMBOL, bar_time(self.index), open_, max(open_, close) * 1.001,
                            min(open_, close) * 0.999, close, 100.0))
        for bar in bars:
            self.rt.tell("market", FeedBars((bar,)))
        self.sent += bars
        market_stats(self.rt)
        drain_pipeline(self.rt)  # every bar told has been through the whole pipeline
        return bars


def _position(rt: Runtime) -> Any:
    snap = rt.peek("positions")
    return snap.positions.get(SYMBOL) if isinstance(snap, PortfolioSnapshot) else None


def _start(tmp_path: Path) -> tuple[Runtime, Feed]:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "market")["max_steps"] = 1
    settings(raw, "evaluator")["strategies"] = [{
        "class": "tests.execution.planned:Planned", "symbols": [SYMBOL],
        "params": {"trigger": TRIGGER, "stop_pct": 0.5, "target_pct": 1.0}}]
    rt = start_tree(write_config(raw, tmp_path / "config.yaml"))
    wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the synthetic step")
    feed = Feed(rt)
    # 40 calm bars, 0.3 % around BASE: the scanner ranks BTC/USDT, nothing trades
    feed.send(*(BASE * (1.003 if i % 2 else 0.997) for i in range(40)))
    assert _position(rt) is None and executor_stats(rt).orders == 0
    return rt, feed


def _shipped_rules() -> ExitRules:
    exits = settings(shipped_config(), "exits")
    return ExitRules(exits["stop_loss_pct"], exits["take_profit_pct"], exits["trailing_pct"],
                     exits.get("trailing_activation_pct", 1.5), exits["time_stop_seconds"],
                     300.0)


@pytest.mark.parametrize("restart", [(), ("exits",), ("executor", "exits")],
                         ids=["no-restart", "exits-restarted", "both-restarted"])
def test_a_strategys_take_profit_closes_the_position_at_its_target(
        tmp_path: Path, restart: tuple[str, ...]) -> None:
    rt, feed = _start(tmp_path)
    try:
        feed.send(TRIGGER)  # Planned enters
        position = wait_until(lambda: _position(rt), timeout=WAIT, what="the entry's fill")
        entry = float(position.avg_price)
        state = rt.peek("executor")
        assert isinstance(state, ExecutorState)
        plan = ExitPlan(TRIGGER - TRIGGER * 0.5 / 100, TARGET)
        assert [(s, p) for s, _, p in state.plans] == [(SYMBOL, plan)], state.plans
        assert state.plans[0][1] == executor_stats(rt).sent[0][0]  # the entry's order

        held = feed.send(BASE * 1.004, BASE * 1.006)  # under the target, over the stop
        for name in restart:
            rt.restart_child(name)
        assert executor_stats(rt).venue_synced
        assert _position(rt) is not None and executor_stats(rt).exits == ()
        # the bar that reaches the target (high 30,465.4, over 30,451.5): take profit
        (reached,) = feed.send(BASE * 1.0145)
        assert reached.high >= TARGET
        wait_until(lambda: _position(rt) is None, timeout=WAIT, what="the take-profit sale")
        assert [reason for _, reason in executor_stats(rt).exits] == ["take_profit"]

        fills = ledger_fills(tmp_path / "ledger.db")
        assert [f.side for f in fills] == [Side.BUY.value, Side.SELL.value]
        assert fills[1].price == pytest.approx(Decimal(repr(reached.close)) * Decimal("0.9995"))
        assert_ledger_matches_venue(fills, venue_fills(tmp_path / "paper_exchange.db"))
        # the shipped percentage rules fire on none of these bars
        rules, watch = _shipped_rules(), Watch(SYMBOL, entry, held[0].at, entry)
        for bar in (*held, reached):
            watch = watch._replace(high=max(watch.high, bar.high))
            assert rules.fired(bar, watch) is None, bar
    finally:
        rt.stop()
