"""The evaluator keeps the owner of an entry whose fill is not recorded yet.

The shipped tree is built in-process from a copy of ``config.yaml`` (state files in the
test's directory; the built-in market stops after one step, ``max_steps: 1``), and the test
drives BTC/USDT itself through the market's ``FeedBars`` input, one bar per message, as a
live feed does. A fill reaches the ledger a few milliseconds after the buy signal; to make
that window as wide as the test needs, deterministically, the test holds a write lock on
the ledger's SQLite file (``BEGIN IMMEDIATE`` from its own connection) while the breakout
bar and the bars after it go through: the executor's fill waits at the position actor's
commit, while the evaluator sees those bars with a snapshot that does not show the
position. Once the lock is released the fill lands; later the price falls below the
momentum strategy's 10-bar low (and above every exit rule's level), and the momentum
strategy, which opened the position, must be the one that sells it.

A pending entry that never fills (refused: the breaker is forced OPEN) blocks new buys of its
symbol for ``entry_timeout_bars`` bars, then lapses, and the next breakout buys.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from actors.execution.contract import client_order_id
from actors.market.contract import Bar, FeedBars
from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import ForceClose, ForceOpen
from supervisor import Runtime
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    attr,
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


class Feed:
    """Owns the test's BTC/USDT price path: one bar a minute after the synthetic first bar,
    each told to the market as its own FeedBars."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.index = 0
        self.last = BASE

    def bar(self, close: float) -> Bar:
        self.index += 1
        open_ = self.last
        self.last = close
        return Bar(SYMBOL, bar_time(self.index), open_, max(open_, close) * 1.001,
                   min(open_, close) * 0.999, close, 100.0)

    def send(self, *closes: float) -> list[Bar]:
        bars = [self.bar(close) for close in closes]
        for bar in bars:
            self.rt.tell("market", FeedBars((bar,)))
        return bars

    def settle(self) -> None:
        """Every bar told so far has been through the whole pipeline."""
        market_stats(self.rt)
        drain_pipeline(self.rt)


def _position(rt: Runtime) -> Any:
    snap = rt.peek("positions")
    return snap.positions.get(SYMBOL) if isinstance(snap, PortfolioSnapshot) else None


def _start(tmp_path: Path, **evaluator: Any) -> tuple[Runtime, Feed]:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "market")["max_steps"] = 1
    settings(raw, "evaluator").update(evaluator)
    rt = start_tree(write_config(raw, tmp_path / "config.yaml"))
    feed = Feed(rt)
    wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the synthetic step")
    # 40 calm bars, 0.3 % around BASE: the scanner ranks BTC/USDT, nothing trades
    feed.send(*(BASE * (1.003 if i % 2 else 0.997) for i in range(40)))
    feed.settle()
    assert _position(rt) is None and executor_stats(rt).orders == 0
    return rt, feed


def test_the_strategy_that_opened_a_position_sells_it_when_the_fill_lands_late(
    tmp_path: Path,
) -> None:
    rt, feed = _start(tmp_path)
    try:
        signals = attr(rt, "evaluator", "signals")

        lock = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # the ledger cannot commit the entry's fill
            # a breakout (momentum buys), then three bars that hold the level
            breakout, *_ = feed.send(*[BASE * 1.015] * 4)
            market_stats(rt)
            rt.ask("scanner", "candidates")
            assert attr(rt, "evaluator", "signals") == signals + 1  # the buy, nothing else
            # the evaluator has seen the bars after the breakout, the fill is not recorded
            assert _position(rt) is None
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        stats = executor_stats(rt)  # answered once the buy is placed and its fill recorded
        assert stats.orders == 1 and stats.fills_recorded == 1, stats
        entry = _position(rt)
        assert entry is not None and entry.quantity > 0

        # ten bars at the level (the 10-bar low rises to it), then a close 1 % lower: below
        # the momentum exit level, above the 3 % stop-loss, the trailing stop not activated
        feed.send(*[BASE * 1.015] * 10)
        (fall,) = feed.send(BASE * 1.005)
        feed.settle()
        stats = executor_stats(rt)
    finally:
        rt.stop()

    venue = venue_fills(tmp_path / "paper_exchange.db")
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"), venue)
    assert [f.side for f in venue] == ["buy", "sell"], venue
    assert venue[0].client_order_id == client_order_id(f"momentum:{SYMBOL}:{int(breakout.at)}:buy")
    assert venue[1].client_order_id == client_order_id(f"momentum:{SYMBOL}:{int(fall.at)}:sell")
    assert stats.exits == (), "an exit closed the position, not its strategy"


def test_a_refused_entry_blocks_new_buys_of_its_symbol_until_it_lapses(tmp_path: Path) -> None:
    rt, feed = _start(tmp_path, entry_timeout_bars=3)
    try:
        signals = attr(rt, "evaluator", "signals")
        rt.ask("breaker", ForceOpen("test", "refuse the first entry"))
        feed.send(BASE * 1.015)  # a breakout: momentum's buy, refused while OPEN
        feed.settle()
        stats = executor_stats(rt)
        assert stats.refused == {"open": 1} and stats.orders == 0, stats
        rt.ask("breaker", ForceClose("test", "trade again"))
        # four more breakouts: the first three come while the refused entry is pending
        # (its fill might still be on its way), the fourth after it lapsed
        *_, last = feed.send(BASE * 1.02, BASE * 1.025, BASE * 1.03, BASE * 1.035)
        feed.settle()
        assert attr(rt, "evaluator", "signals") == signals + 2
        stats = executor_stats(rt)
    finally:
        rt.stop()
    venue = venue_fills(tmp_path / "paper_exchange.db")
    assert [f.client_order_id for f in venue] == [
        client_order_id(f"momentum:{SYMBOL}:{int(last.at)}:buy")], venue
    assert stats.refused == {"open": 1}, stats


def test_a_restarted_evaluator_still_knows_which_strategy_owns_a_position(
    tmp_path: Path,
) -> None:
    rt, feed = _start(tmp_path)
    try:
        (breakout,) = feed.send(BASE * 1.015)  # momentum buys
        feed.settle()
        assert _position(rt) is not None
        rt.restart_child("evaluator")  # its strategies start over; the owners do not
        # enough bars at the level for the new strategy's windows (its 10-bar low rises to
        # the level), then a close 1 % lower: momentum's own exit
        feed.send(*[BASE * 1.015] * 25)
        (fall,) = feed.send(BASE * 1.005)
        feed.settle()
        stats = executor_stats(rt)
    finally:
        rt.stop()
    venue = venue_fills(tmp_path / "paper_exchange.db")
    assert [f.side for f in venue] == ["buy", "sell"], venue
    assert venue[0].client_order_id == client_order_id(f"momentum:{SYMBOL}:{int(breakout.at)}:buy")
    assert venue[1].client_order_id == client_order_id(f"momentum:{SYMBOL}:{int(fall.at)}:sell")
    assert stats.exits == ()


def test_a_restarted_exits_actor_keeps_the_time_stop_running(tmp_path: Path) -> None:
    """A 10-bar time stop: 6 bars before a restart of the exits actor and 5 after still make
    it fire (it counts from the entry, not from the restart)."""
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "market")["max_steps"] = 1
    settings(raw, "exits")["time_stop_seconds"] = 600  # ten one-minute bars
    rt = start_tree(write_config(raw, tmp_path / "config.yaml"))
    feed = Feed(rt)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the synthetic step")
        feed.send(*(BASE * (1.003 if i % 2 else 0.997) for i in range(40)))
        feed.settle()
        feed.send(BASE * 1.015)  # momentum buys
        feed.settle()
        assert _position(rt) is not None
        feed.send(*[BASE * 1.015] * 6)
        feed.settle()
        rt.restart_child("exits")
        feed.send(*[BASE * 1.015] * 5)
        feed.settle()
        stats = executor_stats(rt)
    finally:
        rt.stop()
    assert [reason for _, reason in stats.exits] == ["time_stop"], stats.exits
