"""The shipped tree, built in-process from a copy of ``config.yaml``, trades the built-in
synthetic market (seed 7): trades happen, the ledger equals the venue, the crash opens the
breaker, nothing adds exposure while it is open and exits still fill; a crash injected into
each pipeline stage is restarted by its supervisor and trading goes on with no order lost or
doubled; and the executor records, when it starts, every venue fill the ledger lacks.

What the copy changes, and why (everything else is as shipped):

* every state file goes into the test's directory;
* ``market.speed`` 600 -> 6000 or 12000 (100 or 200 one-minute bars a real second) and
  ``max_steps``, so a run is short and ends by itself (the faster pace where only
  restarts are checked: the more the pipeline lags behind the bars, the fewer round trips
  the strategies make, since they learn of their positions late);
* ``market.crash_at_bar`` 300 -> 90: the synthetic market's BTC/ETH/ADA/XRP go through a
  volatility burst at bars 120-240 that trips the shipped volatility trigger on its own (at
  bar ~130), so with the shipped crash the breaker is already open when the crash comes.
  Moved before the first burst, the crash is what opens it;
* ``breaker.volatility.max_percent`` 8 -> 4: the calm bars before the crash stay under 3.4 %,
  and at 4 % the trigger fires within the crash's first three bars instead of its seventh;
* the strategies' stops widened to the top of their ranges (``momentum.atr_stop`` 2 -> 10,
  ``mean_reversion.stop_k`` 1.5 -> 10): a position's stop is its strategy's (the exits'
  ``stop_loss_pct`` applies to none of them), and the shipped ones, 0.5-1.5 % under the entry,
  fire on the crash's first or second bar, before any volatility measure can tell a crash
  from noise; at about 4-10 % the positions held when the crash starts are still open when the
  breaker trips, so their stops fill while it is OPEN;
* a :class:`~tests.support.bot_helpers.MarketTape` child, added to the market's subscribers, records
  the breaker's state at every bar.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.common.messages import Side
from actors.execution.contract import SkipReason, client_order_id
from actors.market.contract import MarketCursor
from actors.portfolio.contract import HasOrder
from actors.risk.contract import BreakerState, GetBreakerStatus
from actors.strategies.contract import Signal
from actors.venues.contract import GetVenueFills, OrderResult, PlaceOrder
from supervisor import EventKind, EventRecorder, Runtime
from tests.support.bot_helpers import (
    STATE_FILES,
    StoredFill,
    assert_ledger_matches_venue,
    attr,
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
    venue_orders,
    wait_until,
    write_config,
)

SPEED = 6000.0
CRASH_AT = 90  # bar of the market-wide crash in the copy
CRASH_BARS = 12  # the synthetic market's crash lasts this many bars
WAIT = 60.0  # upper bound for a run of a few hundred bars on a loaded machine


def _config(tmp_path: Path, *, steps: int, tape: bool = False,
            speed: float = SPEED) -> dict[str, Any]:
    """The copy described in the module docstring."""
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    m = settings(raw, "market")
    m.update(speed=speed, max_steps=steps, crash_at_bar=CRASH_AT)
    settings(raw, "breaker")["volatility"]["max_percent"] = 4.0
    for entry in settings(raw, "evaluator")["strategies"]:
        entry["params"].update({"momentum": {"atr_stop": 10.0},
                                "mean_reversion": {"stop_k": 10.0}}[entry["class"]])
    if tape:
        m["subscribers"] = ["scanner", "exits", "exchange", "tape"]
        raw["tree"]["children"].insert(0, {"name": "tape",
                                           "actor": "tests.support.bot_helpers:MarketTape"})
    return raw


def _run_to_end(rt: Runtime, steps: int) -> None:
    wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the market to finish")
    assert market_stats(rt).steps == steps
    drain_pipeline(rt)


def _bar(at: float) -> int:
    return round((at - bar_time(0)) / 60.0)


def _entries_while_holding(fills: list[StoredFill]) -> list[str]:
    """Buys of a symbol already held: the executor opens a symbol only when flat."""
    held: dict[str, Decimal] = {}
    doubled = []
    for f in fills:
        qty = held.get(f.symbol, Decimal(0))
        if f.side == "buy":
            if qty > 0:
                doubled.append(f.fill_id)
            held[f.symbol] = qty + f.quantity
        else:
            assert f.quantity <= qty, f"{f.fill_id} sells more {f.symbol} than was held"
            held[f.symbol] = qty - f.quantity
    return doubled


def test_shipped_tree_trades_through_the_crash(tmp_path: Path) -> None:
    steps = 250
    rt = start_tree(write_config(_config(tmp_path, steps=steps, tape=True),
                                 tmp_path / "config.yaml"))
    try:
        _run_to_end(rt, steps)
        stats = executor_stats(rt)
        tape = rt.ask("tape", "tape")
        status = rt.ask("breaker", GetBreakerStatus())
    finally:
        rt.stop()
    venue = venue_fills(tmp_path / "paper_exchange.db")
    orders = venue_orders(tmp_path / "paper_exchange.db")
    ledger = ledger_fills(tmp_path / "ledger.db")

    # trades happened, entries and exits, and the ledger is the venue's record exactly
    sides = Counter(f.side for f in venue)
    assert sides["buy"] >= 3 and sides["sell"] >= 3, sides
    assert_ledger_matches_venue(ledger, venue)
    assert stats.unrecorded == 0 and stats.recovered == 0 and stats.venue_synced
    sent = {coid: (side, reduces, state) for coid, side, reduces, state in stats.sent}
    assert len(sent) == len(stats.sent), "an order was sent twice"
    assert set(sent) == {coid for coid, *_ in orders}, "venue orders differ from those sent"
    assert not _entries_while_holding(venue)

    # the breaker was closed until the crash, and the crash opened it (and it stayed open)
    assert len(tape) == steps
    first_open = next((i for i, e in enumerate(tape) if e.breaker != "closed"), None)
    assert first_open is not None, "the breaker never opened"
    assert all(e.breaker == "closed" for e in tape[:first_open])
    assert CRASH_AT <= _bar(tape[first_open].at) <= CRASH_AT + CRASH_BARS, \
        f"breaker first seen {tape[first_open].breaker} at bar {_bar(tape[first_open].at)}"
    assert all(e.breaker == "open" for e in tape[first_open:])
    assert status.state is BreakerState.OPEN and status.transitions == 1, status
    assert status.reason.startswith("volatility:"), status.reason

    # no exposure-increasing order while open: by the executor's record of each order...
    entries = [s for s in sent.values() if not s[1]]
    assert entries and all(state == "closed" for _, _, state in entries), entries
    assert all(side == "buy" for side, _, _ in entries)
    # ...and by the venue's clock: no buy filled after the tape saw the breaker open
    late = [f for f in venue if f.side == "buy" and _bar(f.at) > _bar(tape[first_open].at) + 3]
    assert not late, late
    assert stats.refused.get("open", 0) > 0, "entries must have been refused while OPEN"

    # exits fired (stop-losses among them), and some filled while the breaker was OPEN
    reasons = Counter(reason for _, reason in stats.exits)
    assert reasons["stop_loss"] >= 1, reasons
    filled = {f.client_order_id: f for f in venue}
    exits_while_open = [coid for coid, _ in stats.exits
                        if sent[coid][2] == "open" and coid in filled]
    assert exits_while_open, f"no exit filled while OPEN; exits sent: {stats.exits}"
    assert all(filled[c].side == "sell" for c in exits_while_open)
    print(f"\n{len(venue)} fills ({dict(sides)}); breaker opened at bar "
          f"{_bar(tape[first_open].at)}; exits {dict(reasons)}, {len(exits_while_open)} filled "
          f"while OPEN; {stats.refused.get('open', 0)} entries refused")


STAGES = ("exits", "executor", "evaluator", "scanner", "market")  # the order they crash in
PIPELINE = ("market", "scanner", "evaluator", "executor", "exits")  # start order


def test_a_crash_in_each_pipeline_stage_is_restarted_and_trading_goes_on(
    tmp_path: Path,
) -> None:
    """Each stage in turn raises in its own handler while the market runs (see
    ``bot_helpers.crash``). This is about restarts, not the breaker, so here the copy keeps
    the shipped stop-loss and has no market crash (``crash_at_bar: null``), no volatility
    trigger (the market's bursts trip it) and a breaker that recovers after 0.25 s instead
    of 120 s: a loss streak or drawdown may still trip it, but cannot stop entries for the
    rest of the run."""
    steps = 420
    crash_at = {name: 60 + 40 * i for i, name in enumerate(STAGES)}
    raw = _config(tmp_path, steps=steps, speed=2 * SPEED)
    settings(raw, "market")["crash_at_bar"] = None
    settings(raw, "exits")["stop_loss_pct"] = _shipped_value("exits", "stop_loss_pct")
    breaker = settings(raw, "breaker")
    breaker["volatility"]["enabled"] = False
    breaker.update(recovery_timeout=0.25, max_recovery_timeout=1.0)
    rt = start_tree(write_config(raw, tmp_path / "config.yaml"))
    recorder = EventRecorder(rt.events)
    try:
        for name in STAGES:
            at = crash_at[name]
            wait_until(lambda at=at: _cursor(rt) >= at, timeout=WAIT,  # type: ignore[misc]
                       what=f"market step {at}")
            crash(rt, name)
            restarted = recorder.wait_for(EventKind.RESTARTED, name, timeout=WAIT)
            assert restarted[-1].incarnation >= 2
            crashed = recorder.of(EventKind.CRASHED, name)
            assert crashed and "AttributeError" in (crashed[-1].error or ""), crashed
        _run_to_end(rt, steps)
    finally:
        recorder.close()
        rt.stop()
    # rest_for_one: a crash restarts the stage and every stage after it, and nothing else
    for name in PIPELINE:
        crashed_at_or_before = PIPELINE.index(name) + 1
        assert len(recorder.of(EventKind.RESTARTED, name)) == crashed_at_or_before, name
    assert recorder.of(EventKind.ESCALATED) == []

    venue = venue_fills(tmp_path / "paper_exchange.db")
    orders = venue_orders(tmp_path / "paper_exchange.db")
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"), venue)
    coids = [coid for coid, *_ in orders]
    assert len(coids) == len(set(coids))
    per_order = Counter(f.client_order_id for f in venue)
    assert max(per_order.values()) == 1, "an order filled twice"
    assert all(status == "filled" for *_, status in orders), orders
    assert not _entries_while_holding(venue), "a position was entered twice"
    last_crash = bar_time(crash_at[STAGES[-1]])
    after = [f for f in venue if f.at > last_crash]
    before = [f for f in venue if f.at <= bar_time(crash_at[STAGES[0]])]
    assert before, "no trading before the first crash"
    assert any(f.side == "buy" for f in after), \
        f"no entry after the last restart ({len(venue)} fills in all)"
    print(f"\n{len(venue)} fills, {len(after)} after the last restart; restarts: "
          + ", ".join(f"{n} {len(recorder.of(EventKind.RESTARTED, n))}" for n in PIPELINE))


def _shipped_value(child: str, key: str) -> Any:
    return settings(shipped_config(), child)[key]


def _cursor(rt: Runtime) -> int:
    cursor = rt.peek("market")
    return cursor.steps if isinstance(cursor, MarketCursor) else 0


def test_executor_start_records_venue_fills_the_ledger_lacks(tmp_path: Path) -> None:
    """A kill between the venue's fill and the ledger's record leaves fills only at the
    venue. Made here by placing orders at the exchange directly; the executor must record
    them when it starts: after a restart of the executor alone (3 fills), and after a
    restart of the whole tree (2,000 fills, in a few batched transactions)."""
    raw = _config(tmp_path, steps=5)
    config = write_config(raw, tmp_path / "config.yaml")
    rt = start_tree(config)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="five bars")
        placed = []
        for i in range(3):
            result = rt.ask("exchange", PlaceOrder(f"gap-{i}", "BTC/USDT", Side.BUY,
                                                  Decimal("0.001")))
            assert isinstance(result, OrderResult) and result.status == "filled", result
            placed.append(result.fills[0])
        assert not any(rt.ask("positions", HasOrder(f.client_order_id)) for f in placed)
        rt.restart_child("executor")
        stats = executor_stats(rt)
        assert stats.recovered == 3 and stats.venue_synced, stats
        assert all(rt.ask("positions", HasOrder(f.client_order_id)) for f in placed)
        rt.restart_child("executor")  # nothing is missing any more
        assert executor_stats(rt).recovered == 0
    finally:
        rt.stop()
    venue_db = tmp_path / STATE_FILES["exchange"][1]
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"), venue_fills(venue_db))

    # -- 2,000 fills only at the venue, as many kills would leave them; then a cold start
    price = venue_fills(venue_db)[-1].price
    start_at = max(f.at for f in venue_fills(venue_db)) + 60
    rows = []
    for i in range(2000):
        side = "buy" if i % 2 == 0 else "sell"
        coid = f"bulk-{i}"
        fee = (Decimal("0.001") * price / 1000).quantize(Decimal("0.00000001"))
        rows.append((f"{coid}-1", coid, "BTC/USDT", side, "0.001", str(price), str(fee),
                     start_at + i))
    db = sqlite3.connect(venue_db)
    with db:
        db.executemany("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # the venue's trigger has added each fill's order row; this makes sure of it
        db.executemany("INSERT OR IGNORE INTO orders VALUES (?, 'BTC/USDT', ?, '0.001', "
                       "'filled', '')", [(r[1], r[3]) for r in rows])
    db.close()
    rt = start_tree(config)
    try:
        stats = executor_stats(rt)
        assert stats.recovered == 2000, stats
        commits = attr(rt, "positions", "commits")
        assert commits <= 5, f"{commits} ledger transactions for 2,000 fills: not batched"
        venue_now = rt.ask("exchange", GetVenueFills())
        assert len(venue_now) == 2003
    finally:
        rt.stop()
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"), venue_fills(venue_db))


def test_a_signal_an_earlier_executor_acted_on_is_checked_and_not_sent_again(
    tmp_path: Path,
) -> None:
    """The executor skips its duplicate checks only for signals newer than any an earlier
    instance may have acted on. Here signals are told to the executor directly: a buy of
    BTC/USDT and a sell that closes it. The same buy again (BTC/USDT is flat, so only the
    duplicate check stands between it and a second entry), after a restart of the executor
    and after a restart of the whole process (the synthetic market replays from bar 0), is
    checked, found in the ledger and not sent; a new signal of the same bar time is checked
    and sent."""
    config = write_config(_config(tmp_path, steps=5), tmp_path / "config.yaml")
    at = bar_time(4)

    def signal(symbol: str, side: Side, price: float) -> Signal:
        return Signal(f"test:{symbol}:{int(at)}:{side.value}", "test", symbol, side, price,
                      at, "a test signal")

    buy, sell = signal("BTC/USDT", Side.BUY, 30_000.0), signal("BTC/USDT", Side.SELL, 30_000.0)
    eth = signal("ETH/USDT", Side.BUY, 2_000.0)
    rt = start_tree(config)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="five bars")
        drain_pipeline(rt)
        before = executor_stats(rt).orders
        rt.tell("executor", buy)
        rt.tell("executor", sell)
        assert executor_stats(rt).orders == before + 2
        rt.restart_child("executor")
        rt.tell("executor", buy)  # a duplicate, after a restart of the executor alone
        rt.tell("executor", eth)  # new, of the same bar time: checked, then sent
        stats = executor_stats(rt)
        assert stats.skipped.get(SkipReason.IN_LEDGER) == 1, stats.skipped
        assert [coid for coid, *_ in stats.sent] == [client_order_id(eth.signal_id)]
    finally:
        rt.stop()
    rt = start_tree(config)  # a new process: nothing published, the market starts over
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="five bars")
        drain_pipeline(rt)
        rt.tell("executor", buy)
        stats = executor_stats(rt)
        assert stats.skipped.get(SkipReason.IN_LEDGER) == 1, stats.skipped
        assert client_order_id(buy.signal_id) not in {coid for coid, *_ in stats.sent}
    finally:
        rt.stop()
    coids = Counter(coid for coid, *_ in venue_orders(tmp_path / "paper_exchange.db"))
    assert all(coids[client_order_id(s.signal_id)] == 1 for s in (buy, sell, eth)), coids
    assert max(coids.values()) == 1
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"),
                                venue_fills(tmp_path / "paper_exchange.db"))


def test_no_new_risk_while_a_fill_is_not_in_the_ledger(tmp_path: Path) -> None:
    """With the position actor stopped, a buy fills at the venue but cannot be recorded:
    until it is, the executor takes no new risk anywhere (the portfolio it sizes from is
    missing that fill), and nothing more for that symbol; once the ledger is back, the fill
    is recorded and trading resumes."""
    config = write_config(_config(tmp_path, steps=5), tmp_path / "config.yaml")
    at = bar_time(4)

    def signal(symbol: str, side: Side, price: float, tag: str = "") -> Signal:
        return Signal(f"test{tag}:{symbol}:{int(at)}:{side.value}", "test", symbol, side,
                      price, at, "a test signal")

    rt = start_tree(config)
    try:
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="five bars")
        drain_pipeline(rt)
        rt.terminate_child("positions")  # the ledger is down (by hand: not restarted)
        rt.tell("executor", signal("BTC/USDT", Side.BUY, 30_000.0))
        stats = executor_stats(rt)
        assert stats.unrecorded == 1, stats  # filled at the venue, not in the ledger
        rt.tell("executor", signal("ETH/USDT", Side.BUY, 2_000.0))  # new risk: refused
        stats = executor_stats(rt)
        assert stats.skipped.get(SkipReason.UNSETTLED) == 1, stats.skipped
        assert len(stats.sent) == 1
        rt.restart_child("positions")
        rt.tell("executor", signal("ETH/USDT", Side.BUY, 2_000.0, tag="2"))
        stats = executor_stats(rt)  # the pending fill went in first, then the new entry
        assert stats.unrecorded == 0 and len(stats.sent) == 2, stats
    finally:
        rt.stop()
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"),
                                venue_fills(tmp_path / "paper_exchange.db"))
