"""Alerts from a running bot reach a real HTTP endpoint through apprise, and a tripped breaker
never leaves a position unprotected.

The shipped tree is built in-process from a copy of ``config.yaml`` whose ``alerts`` child
has one channel, ``json://127.0.0.1:PORT/botvisor`` tagged ``ops``, served by a
ThreadingHTTPServer this test starts. Other changes to the copy: state files go into the
test's directory, and the built-in market stops after one step (``max_steps: 1``) so the
test drives prices itself through the market's ``FeedBars`` input, which validates them like
any feed. With prices under its control the test makes the momentum strategy open a
BTC/USDT position, forces the breaker OPEN with the operator's ``ForceOpen`` message, and
lets the next bar's low fall through the 3 % stop-loss. It checks that the stop-loss exit is
sent and filled while the breaker is OPEN, that an entry signal is refused, and that alerts
reach the server when the breaker opens and when an actor is restarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.market.contract import Bar, FeedBars
from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import BreakerState, ForceOpen
from supervisor import EventKind, EventRecorder, Runtime
from tests.support.alert_server import AlertInbox
from tests.support.alert_server import alert_server as serve_alerts
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    bar_time,
    crash,
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
STOP_LOSS_PCT = 3.0  # exits.stop_loss_pct as shipped


# -- the HTTP side -----------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[tuple[int, AlertInbox]]:
    with serve_alerts() as served:
        yield served


# -- prices ------------------------------------------------------------------------------------
class Feed:
    """Owns the test's BTC/USDT price path: one bar a minute after the synthetic first bar."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.index = 0
        self.last = BASE

    def bar(self, close: float, *, low: float | None = None, high: float | None = None) -> Bar:
        self.index += 1
        open_ = self.last
        hi = max(open_, close) * 1.001 if high is None else high
        lo = min(open_, close) * 0.999 if low is None else low
        self.last = close
        return Bar(SYMBOL, bar_time(self.index), open_, hi, lo, close, 100.0)

    def send(self, *bars: Bar) -> None:
        for bar in bars:
            self.rt.tell("market", FeedBars((bar,)))

    def calm(self, count: int) -> None:
        """Bars alternating 0.3 % around BASE: liquid and volatile enough for the scanner."""
        self.send(*(self.bar(BASE * (1.003 if i % 2 else 0.997)) for i in range(count)))


def _position(rt: Runtime) -> Any:
    snap = rt.peek("positions")
    return snap.positions.get(SYMBOL) if isinstance(snap, PortfolioSnapshot) else None


def test_alerts_reach_the_server_and_stop_losses_fill_while_the_breaker_is_open(
    tmp_path: Path, server: tuple[int, AlertInbox]
) -> None:
    port, inbox = server
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "alerts")["channels"] = [
        {"name": "ops", "url": f"json://127.0.0.1:{port}/botvisor", "tags": ["ops"]}]
    settings(raw, "alerts")["fills"] = "warning"  # fills to the ops channel too
    settings(raw, "market")["max_steps"] = 1
    assert settings(raw, "exits")["stop_loss_pct"] == STOP_LOSS_PCT
    rt = start_tree(write_config(raw, tmp_path / "config.yaml"))
    recorder = EventRecorder(rt.events)
    feed = Feed(rt)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the synthetic step")
        # -- a position: 40 calm bars (the scanner ranks BTC/USDT), then a breakout
        feed.calm(40)
        feed.send(feed.bar(BASE * 1.015))
        position = wait_until(lambda: _position(rt), timeout=WAIT, what="a BTC/USDT position")
        entry = float(position.avg_price)

        # -- the operator opens the breaker; the alert reaches the server
        status = rt.ask("breaker", ForceOpen("test", "drill while a position is open"))
        assert status.state is BreakerState.OPEN and status.manual
        opened = inbox.wait_for("the breaker opening",
                                lambda b: "Circuit breaker open" in str(b.get("title")))
        assert "drill while a position is open" in str(opened.get("message"))

        # -- the next bar's low falls through the stop; its close stays above the momentum
        # strategy's exit level, so the stop-loss is the only exit that fires
        stop = entry * (1 - STOP_LOSS_PCT / 100)
        feed.send(feed.bar(feed.last, low=stop * 0.99, high=feed.last * 1.001))
        wait_until(lambda: _position(rt) is None, timeout=WAIT, what="the stop-loss to fill")
        # -- a new breakout while OPEN: its entry signal must be refused
        feed.send(feed.bar(BASE * 1.05))
        assert market_stats(rt).bars == 6 + feed.index  # one synthetic step, then ours
        drain_pipeline(rt)
        stats = executor_stats(rt)

        # -- both fills were announced, each once (the position actor tells alerts)
        inbox.wait_for("the stop-loss fill's alert",
                       lambda b: f"Fill: sell {position.quantity} {SYMBOL} @" in
                       str(b.get("title")))
        fill_titles = [t for t in inbox.titles() if "Fill: " in t]
        assert len(fill_titles) == 2 and "Fill: buy" in fill_titles[0], fill_titles

        # -- an actor restarts; that alert reaches the server too
        crash(rt, "scanner")
        recorder.wait_for(EventKind.RESTARTED, "scanner", timeout=WAIT)
        inbox.wait_for("the scanner's restart",
                       lambda b: "scanner restarted" in str(b.get("title")))
    finally:
        recorder.close()
        rt.stop()

    venue = venue_fills(tmp_path / "paper_exchange.db")
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"), venue)
    assert [f.side for f in venue] == ["buy", "sell"], venue
    sent = {coid: (side, reduces, state) for coid, side, reduces, state in stats.sent}
    assert [reason for _, reason in stats.exits] == ["stop_loss"], stats.exits
    exit_coid = stats.exits[0][0]
    assert sent[exit_coid] == ("sell", True, "open"), sent
    assert venue[1].client_order_id == exit_coid
    assert float(venue[1].price) < entry, "the stop sold below the entry"
    assert stats.refused.get("open", 0) >= 1, stats.refused
    assert [s for s in sent.values() if not s[1]] == [("buy", False, "closed")]
    assert not any("Bad market data" in t for t in inbox.titles()), inbox.titles()
