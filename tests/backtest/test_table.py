"""The result table (actors/backtest/table.py), pure: the ``--json`` document's keys are
a contract (the exact list below is the one docs/backtesting.md gives), its numbers are
numbers, Decimals strings and undefined or infinite figures null; the plain text a pipe
gets and the rich tables a terminal gets both carry every figure and breakdown."""

from __future__ import annotations

import io
import json
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

from actors.backtest.contract import BacktestResult, BreakerTrip, EquityCurve, TradeRecord
from actors.backtest.metrics import Summary, summarize
from actors.backtest.table import plain_text, print_summary, to_json

pytestmark = pytest.mark.unit

KEYS = [
    "trades", "wins", "losses", "win_rate", "total_pnl", "fees", "gross_profit",
    "gross_loss", "profit_factor", "start_cash", "final_equity", "total_return", "cagr",
    "max_drawdown", "max_drawdown_duration_s", "sharpe", "sortino", "exposure",
    "breaker_trips", "steps", "timeframe_s", "from", "until", "candles", "bad_candles",
    "symbols", "strategies", "by_symbol", "by_strategy",
]
BREAKDOWN_KEYS = ["name", "trades", "wins", "win_rate", "pnl", "profit_factor"]


def _summary(pnls: tuple[str, ...] = ("12.5", "-2.5", "4"),
             equity: tuple[float, ...] = (1010.0, 990.0, 1014.0)) -> Summary:
    symbols = ("BTC/USDT", "ETH/USDT")
    trades = tuple(TradeRecord(symbols[i % 2], "breakout", 60.0 * i, 60.0 * (i + 1),
                               Decimal("100.5"), Decimal(101), Decimal("0.01"), Decimal(p),
                               Decimal("0.02"), "stop_loss") for i, p in enumerate(pnls))
    times = [60.0 * (i + 1) for i in range(len(equity))]
    result = BacktestResult(trades, EquityCurve(times, equity), Decimal(1000), 60.0,
                            (0.0, 2 * 86400.0), symbols, ("breakout",),
                            (BreakerTrip(120.0, "drawdown"),), candles=6, bad_candles=1)
    return summarize(result)


def test_the_json_keys_are_the_documented_contract() -> None:
    document = to_json(_summary())
    assert list(document) == KEYS
    assert [list(row) for row in document["by_symbol"]] == [BREAKDOWN_KEYS] * 2
    assert [list(row) for row in document["by_strategy"]] == [BREAKDOWN_KEYS]


def test_the_docs_list_the_json_keys_in_order() -> None:
    """docs/backtesting.md's key table names every key of the document, in its order."""
    page = (Path(__file__).parents[2] / "docs" / "backtesting.md").read_text()
    table = page.split("| key | type | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| `")]
    assert [key for cells in rows for key in re.findall(r"`([^`]+)`", cells[0])] == KEYS
    assert re.findall(r"`([^`]+)`", rows[-1][2]) == BREAKDOWN_KEYS


def test_the_json_has_numbers_as_numbers_and_decimals_as_strings() -> None:
    document = to_json(_summary())
    assert document["trades"] == 3 and document["breaker_trips"] == 1
    assert document["total_pnl"] == "14.0" and document["start_cash"] == "1000"
    assert document["fees"] == "0.06"
    assert document["total_return"] == pytest.approx(0.014)
    assert document["profit_factor"] == pytest.approx(6.6)
    assert document["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert document["by_symbol"][0] == {
        "name": "BTC/USDT", "trades": 2, "wins": 2, "win_rate": 1.0, "pnl": "16.5",
        "profit_factor": None}
    assert isinstance(document["cagr"], float)
    assert json.loads(json.dumps(document, allow_nan=False)) == document


def test_undefined_and_infinite_figures_are_null_never_nan() -> None:
    document = to_json(_summary(pnls=("1",), equity=(1000.0,)))
    assert document["profit_factor"] is None  # no loss: infinite
    assert document["sharpe"] is None and document["sortino"] is None  # one step
    empty = to_json(_summary(pnls=(), equity=(1000.0, 1000.0)))
    assert empty["win_rate"] is None and empty["profit_factor"] is None
    assert empty["by_symbol"] == [] and empty["by_strategy"] == []
    json.dumps(document, allow_nan=False)
    json.dumps(empty, allow_nan=False)


def test_plain_text_carries_every_figure_without_escape_codes() -> None:
    text = plain_text(_summary())
    assert "\x1b" not in text
    for label in ("trades", "win rate", "total return", "CAGR", "max drawdown", "Sharpe",
                  "Sortino", "profit factor", "exposure", "breaker trips"):
        assert f"  {label} " in text
    assert "Per symbol" in text and "Per strategy" in text
    lines = text.splitlines()
    assert any(line.split() == ["BTC/USDT", "2", "100.00%", "16.50", "inf"] for line in lines)
    assert any(line.split() == ["ETH/USDT", "1", "0.00%", "-2.50", "0.00"] for line in lines)
    assert any(line.split()[:3] == ["total", "return", "1.40%"] for line in lines)


def test_print_summary_writes_plain_text_to_a_pipe() -> None:
    stream = io.StringIO()
    print_summary(_summary(), stream)
    assert stream.getvalue() == plain_text(_summary())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_print_summary_draws_rich_tables_on_a_terminal() -> None:
    stream = _Terminal()
    print_summary(_summary(), stream)
    out = stream.getvalue()
    assert out != plain_text(_summary())
    assert "Backtest result" in out and "Per strategy" in out
    assert any(ch in out for ch in "│┃┏━")
    assert "BTC/USDT" in out and "inf" in out


def test_a_symbol_that_looks_like_markup_is_printed_as_it_is() -> None:
    trade = TradeRecord("[/bold][red]X", "[b]s", 0.0, 60.0, Decimal(1), Decimal(1),
                        Decimal(1), Decimal(1), Decimal(0), "x")
    result = BacktestResult((trade,), EquityCurve([60.0], [101.0]), Decimal(100), 60.0,
                            (0.0, 60.0), ("[/bold][red]X",), ("[b]s",))
    stream = _Terminal()
    print_summary(summarize(result), stream)
    assert "[/bold][red]X" in stream.getvalue() and "[b]s" in stream.getvalue()


def test_an_infinite_ratio_prints_as_inf() -> None:
    summary = _summary(pnls=("1",), equity=(1000.0,))
    assert summary.profit_factor == math.inf
    assert any(line.split() == ["profit", "factor", "inf"]
               for line in plain_text(summary).splitlines())


def test_the_table_shows_money_to_the_cent_and_the_json_keeps_it_exact() -> None:
    summary = _summary(pnls=("12.3456789", "-2.0049", "4"))
    text = plain_text(summary)
    assert re.search(r"total pnl\s+14\.34\b", text), text
    assert re.search(r"fees\s+0\.06\b", text) and "12.3456789" not in text
    assert to_json(summary)["total_pnl"] == "14.3407789"
