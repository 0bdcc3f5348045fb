"""The built-in market's clock goes on across processes, so venue time never runs backwards.

Two trees are built one after the other from the same copy of ``config.yaml`` on the same
state directory, as two ``botvisor run`` processes would be: the second's market must start
after the last bar the first emitted, not at the synthetic market's first bar again. A
damaged clock file stops the market with an error naming the file.

What the copy changes: state files into the test's directory; the market stops after a few
steps (``max_steps``) and has no crash bar; everything else is as shipped.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from actors.common.messages import Fill, Side
from actors.market.contract import Bar, FeedBars, MarketCursor
from actors.venues.contract import OrderResult, PlaceOrder
from supervisor import EventKind, EventRecorder, Runtime
from tests.support.bot_helpers import (
    MARKET_START,
    bar_time,
    market_stats,
    redirect_state,
    settings,
    shipped_config,
    start_tree,
    wait_until,
    write_config,
)

WAIT = 20.0
STEPS = 5


def _config(tmp_path: Path) -> Path:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "market").update(max_steps=STEPS, crash_at_bar=None)
    return write_config(raw, tmp_path / "config.yaml")


def _run(config: Path) -> tuple[float, float]:
    """Start the tree, let the market emit its steps, stop: (first, last) bar times."""
    rt = start_tree(config)
    try:
        first = wait_until(lambda: _first_at(rt.peek("market")), timeout=WAIT,
                           what="the first market step")
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the market's steps")
        last = market_stats(rt).last_at
        assert last is not None
    finally:
        rt.stop()
    return first, last


def _first_at(cursor: object) -> float | None:
    if isinstance(cursor, MarketCursor) and cursor.steps == 1:
        return max(b.at for b in cursor.last.values())
    return None


def test_market_time_goes_on_across_a_restart(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first_run = _run(config)
    assert first_run[0] == MARKET_START
    second_run = _run(config)
    assert second_run[0] > first_run[1], (first_run, second_run)
    third_run = _run(config)
    assert third_run[0] > second_run[1], (second_run, third_run)


def test_a_damaged_market_clock_stops_the_market_and_names_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _run(config)
    clock = tmp_path / "market_clock.json"
    clock.write_text("{not json", encoding="utf-8")
    rt = start_tree(config)
    recorder = EventRecorder(rt.events)
    try:
        failed = recorder.wait_for(EventKind.START_FAILED, "market", timeout=WAIT)
        assert str(clock) in (failed[-1].error or ""), failed[-1]
        assert "damaged" in (failed[-1].error or "")
    finally:
        recorder.close()
        rt.stop()


def _buy(rt: Runtime, coid: str) -> Fill:
    result = rt.ask("exchange", PlaceOrder(coid, "BTC/USDT", Side.BUY, Decimal("0.001")))
    assert isinstance(result, OrderResult) and result.status == "filled", result
    return result.fills[0]


def test_venue_time_does_not_run_backwards_when_the_market_clock_is_lost(
        tmp_path: Path) -> None:
    config = _config(tmp_path)
    rt = start_tree(config)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the market's steps")
        price = 30_000.0
        rt.tell("market", FeedBars((Bar("BTC/USDT", bar_time(500), price, price, price,
                                        price, 100.0),)))
        wait_until(lambda: market_stats(rt).last_at == bar_time(500), timeout=WAIT,
                   what="the fed bar")
        before = _buy(rt, "bv-before")
    finally:
        rt.stop()
    assert before.at == bar_time(500)
    (tmp_path / "market_clock.json").unlink()
    rt = start_tree(config)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the market's steps")
        assert market_stats(rt).last_at == bar_time(STEPS - 1)  # the market starts again
        after = _buy(rt, "bv-after")
    finally:
        rt.stop()
    assert after.at >= before.at, (before.at, after.at)
