"""Parity of `botvisor backtest` and `botvisor run` (issue 19, item 4): the same CSV, the same
config, the same trades, trade by trade.

A seeded dataset (three symbols, 2,000 one-minute candles with trends) is written to the
test's directory; one config, the shipped ``config.yaml`` adapted, is run both ways, each a
real subprocess: `botvisor backtest --json --report` (its trades read from the report's
table) and `botvisor run`, stopped with SIGTERM once the market says its replay finished
(its trades read from the ledger it wrote). Every backtest trade must be in the ledger as
two fills (one for a trade still open at the end of the data): the entry's client order id
derived from the strategy's buy signal (strategy, symbol, candle time), the exit's from the
exit rule's request or the strategy's sell signal (which names the exit reason and time),
the same quantity to the venue's quantity places, the same prices to its price places, the
same fees and fill times; and the ledger holds no other fill.

What the copy changes, and why (docs/backtesting.md, "Parity with the live tree"):

* ``market``: ``source: csv`` over the dataset, ``pace: lockstep`` with
  ``lockstep_through: [evaluator]`` and ``lockstep_idle: executor`` (each step only once
  the pipeline is done with the one before), ``marks_interval: 0`` (every step's closes
  to the position actor, as the backtest marks every step), no clock file (one process,
  one replay);
* ``executor.serial: true``: each decision with nothing in flight, as the backtest's;
* ``positions.equity_interval`` 1 s -> 1 µs: a snapshot with every step's marks (the
  backtest sizes entries with the step's closes);
* ``breaker.consecutive_losses.max_losses`` 5 -> 1000: a trip's recovery runs on the wall
  clock live and on candle time in the backtest, so the two cannot agree after a trip; the
  dataset trips no other rule as shipped (the test checks that the backtest saw no trip);
* every state file in the test's directory.

Without ``pace: lockstep`` (the timed pace, 1,000 bars a real second) one trade of 203
agrees; with lockstep and without ``serial``, also one: an entry decided while another
symbol's order of the same step is out is sized on a different equity, and the
difference carries on through every later trade.
"""

from __future__ import annotations

import json
import math
import random
import signal
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from actors.execution.contract import client_order_id
from tests.conftest import BotProcess
from tests.support.bot_helpers import (
    StoredFill,
    ledger_fills,
    redirect_state,
    settings,
    shipped_config,
    write_config,
)

BARS = 2000
SEED = 3  # the dataset's; at this seed the shipped breaker trips on nothing but losses
RULE_EXITS = ("stop_loss", "take_profit", "trailing_stop", "time_stop")
END_OF_DATA = "end_of_data"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def write_dataset(directory: Path, *, bars: int = BARS, seed: int = SEED) -> None:
    """Three symbols of one-minute candles: a random walk whose drift changes every three
    hours (up, down, or none), so that breakouts, reversions, stops and targets all occur."""
    directory.mkdir(parents=True)
    for k, (symbol, start) in enumerate((("AAA_USDT", 100.0), ("BBB_USDT", 20.0),
                                         ("CCC_USDT", 5.0))):
        rng = random.Random(seed * 10 + k)
        price = start
        rows = ["timestamp,open,high,low,close,volume"]
        drift = 0.0
        for i in range(bars):
            if i % 180 == 0:
                trending = rng.random() < 0.7
                drift = rng.choice((-1, 1)) * rng.uniform(0.0004, 0.0015) if trending else 0.0
            close = price * math.exp(drift + rng.gauss(0.0, 0.002))
            high = max(price, close) * (1 + abs(rng.gauss(0, 0.001)))
            low = min(price, close) * (1 - abs(rng.gauss(0, 0.001)))
            volume = rng.uniform(5_000, 20_000) * 100 / price
            rows.append(f"{START_MS + 60_000 * i},{price:.6f},{high:.6f},{low:.6f},"
                        f"{close:.6f},{volume:.4f}")
            price = close
        (directory / f"{symbol}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def parity_config(tmp_path: Path, data: Path) -> Path:
    """The shipped config with the changes the module docstring lists."""
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    raw["runtime"]["state_dir"] = str(tmp_path)
    market = settings(raw, "market")
    for key in ("seed", "crash_at_bar"):  # the synthetic market's
        market.pop(key, None)
    market.update(source="csv", csv_dir=str(data), pace="lockstep", lockstep_through=["evaluator"],
                  lockstep_idle="executor",
                  marks_interval=0, clock_file=None)
    settings(raw, "executor")["serial"] = True
    settings(raw, "positions")["equity_interval"] = 1e-6
    settings(raw, "breaker")["consecutive_losses"]["max_losses"] = 1000
    return write_config(raw, tmp_path / "config.yaml")


class _Rows(HTMLParser):
    """Every table row of a page, as its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


TRADE_HEADER = ["symbol", "strategy", "entry", "exit", "entry price", "exit price",
                "quantity", "pnl", "fees", "exit reason"]


def report_trades(path: Path) -> list[dict[str, str]]:
    """The trades table of a backtest's HTML report."""
    parser = _Rows()
    parser.feed(path.read_text(encoding="utf-8"))
    start = parser.rows.index(TRADE_HEADER)
    return [dict(zip(TRADE_HEADER, row, strict=True)) for row in parser.rows[start + 1:]]


def _epoch(when: str) -> float:
    return datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def _expected_fills(trade: dict[str, str]) -> list[tuple[str, str, str, str, str, float]]:
    """The (client order id, symbol, side, quantity, price, time) of the fills a backtest
    trade must have in the live ledger: the entry, and the exit unless the data ended."""
    symbol, strategy, reason = trade["symbol"], trade["strategy"], trade["exit reason"]
    entry_at, exit_at = _epoch(trade["entry"]), _epoch(trade["exit"])
    fills = [(client_order_id(f"{strategy}:{symbol}:{int(entry_at)}:buy"), symbol, "buy",
              trade["quantity"], trade["entry price"], entry_at)]
    if reason != END_OF_DATA:
        signal_id = (f"exit:{reason}:{symbol}:{int(exit_at)}" if reason in RULE_EXITS
                     else f"{strategy}:{symbol}:{int(exit_at)}:sell")
        fills.append((client_order_id(signal_id), symbol, "sell", trade["quantity"],
                      trade["exit price"], exit_at))
    return fills


def _row(fill: StoredFill) -> tuple[str, str, str, str, str, float]:
    return (fill.client_order_id, fill.symbol, fill.side, str(fill.quantity),
            str(fill.price), fill.at)


def _backtest(config: Path, data: Path, report: Path,
              bot_process: type[BotProcess]) -> dict[str, Any]:
    bot = bot_process("backtest", "--config", str(config), "--data", str(data), "--json",
                      "--report", str(report), cwd=config.parent)
    assert bot.wait(timeout=120) == 0, "\n".join(bot.lines)
    result: dict[str, Any] = json.loads(bot.stdout())
    return result


def _run(config: Path, bot_process: type[BotProcess]) -> BotProcess:
    bot = bot_process("run", "--config", str(config), "--duration", "300", cwd=config.parent)
    bot.wait_for_line(rf"market feed finished after {BARS} steps", timeout=120)
    bot.signal(signal.SIGTERM)
    assert bot.wait(timeout=60) == 0, "\n".join(bot.lines)
    return bot


def test_backtest_and_a_lockstep_run_make_the_same_trades(
    tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    data = tmp_path / "data"
    write_dataset(data)
    config = parity_config(tmp_path, data)
    summary = _backtest(config, data, tmp_path / "report.html", bot_process)
    trades = report_trades(tmp_path / "report.html")
    bot = _run(config, bot_process)
    live = ledger_fills(tmp_path / "ledger.db")

    # the backtest is not vacuous: both strategies trade, every kind of exit fires, and the
    # breaker never trips (after a trip the two sides cannot agree: see the docstring)
    assert summary["trades"] == len(trades) >= 150, summary["trades"]
    assert summary["breaker_trips"] == 0 and summary["bad_candles"] == 0
    strategies = Counter(t["strategy"] for t in trades)
    assert strategies["momentum"] >= 30 and strategies["mean_reversion"] >= 30, strategies
    kinds = Counter(t["exit reason"] if t["exit reason"] in (*RULE_EXITS, END_OF_DATA)
                    else "strategy" for t in trades)
    assert kinds["stop_loss"] and kinds["take_profit"] and kinds["strategy"] >= 10, kinds

    # the live run replayed every step in lockstep (none fell back to the timed pace)
    assert not [line for line in bot.lines if "lockstep: step" in line]

    # trade by trade: the same signals (client order ids), sides, quantities, prices, times
    expected = [fill for trade in trades for fill in _expected_fills(trade)]
    by_coid = {f.client_order_id: f for f in live}
    assert len(by_coid) == len(live), "a client order id filled twice"
    missing = [e for e in expected if e[0] not in by_coid]
    assert not missing, f"{len(missing)} backtest fills not in the live ledger: {missing[:3]}"
    differ = [(e, _row(by_coid[e[0]])) for e in expected if _row(by_coid[e[0]]) != e]
    assert not differ, f"{len(differ)} fills differ (backtest, live): {differ[:3]}"
    extra = {f.client_order_id for f in live} - {e[0] for e in expected}
    assert not extra, f"{len(extra)} live fills the backtest did not make"

    # and the money: each trade's fees are its fills' fees, so the totals agree too
    for trade in trades:
        fees = sum((by_coid[e[0]].fee for e in _expected_fills(trade)), Decimal(0))
        assert fees == Decimal(trade["fees"]), trade
    assert sum((f.fee for f in live), Decimal(0)) == Decimal(summary["fees"])
