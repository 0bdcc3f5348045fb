"""The market's batched fan-out: one ``MarketSamples`` to the breaker and one ``MarkPrices``
to the position actor per emit, taken exactly as the single messages they replace (which
still work for other senders).

* Two real breakers (SQLite, manual clock) are fed the same synthetic market, with its
  crash, one step at a time: one a PriceSample and a VolumeSample per bar, the other one
  MarketSamples per step. Their volatility measures, their trip and its figures are equal.
* A real position actor holding BTC/USDT and ETH/USDT gets one MarkPrices; its snapshot
  equals that of a second one that got the same prices as MarkPrice messages.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from actors.common.messages import Fill, Side
from actors.market.contract import MarketSamples, MarkPrices, PriceSample, VolumeSample
from actors.market.data import SyntheticMarket
from actors.portfolio.contract import GetPortfolio, MarkPrice, PortfolioSnapshot, RecordFill
from actors.risk.contract import BreakerState, BreakerStatus, GetBreakerStatus
from tests.support.breaker_helpers import breaker_settings, start_breaker
from tests.support.position_helpers import start_ledger


def _breaker_after(directory: Path, *, batched: bool) -> tuple[BreakerStatus, int]:
    """Feed the synthetic market (crash at bar 40) to a breaker; its status at the end, and
    the step at which it was first seen OPEN."""
    directory.mkdir()
    settings = breaker_settings(
        directory, volatility={"window_seconds": 600, "max_percent": 6.0, "min_samples": 5},
        liquidity={"min_volume": 1000.0})
    rt = start_breaker(settings)
    market = SyntheticMarket(seed=7, crash_at_bar=40)
    opened = -1
    try:
        for step in range(80):
            bars = market.step()
            if batched:
                rt.tell("breaker", MarketSamples(
                    tuple((b.symbol, b.close, b.at, b.volume * b.close) for b in bars)))
            else:
                for b in bars:
                    rt.tell("breaker", PriceSample(b.symbol, b.close, b.at))
                    rt.tell("breaker", VolumeSample(b.symbol, b.volume * b.close))
            status = rt.ask("breaker", GetBreakerStatus())
            if opened < 0 and status.state is BreakerState.OPEN:
                opened = step
        final = rt.ask("breaker", GetBreakerStatus())
    finally:
        rt.stop()
    assert isinstance(final, BreakerStatus)
    return final, opened


def test_market_samples_trip_the_breaker_as_single_samples_do(tmp_path: Path) -> None:
    single, single_opened = _breaker_after(tmp_path / "single", batched=False)
    batched, batched_opened = _breaker_after(tmp_path / "batched", batched=True)
    assert single_opened >= 40, "the crash should be what opens the breaker"
    assert batched_opened == single_opened
    assert batched.state is single.state is BreakerState.OPEN
    assert batched.reason == single.reason and batched.reason.startswith("volatility:")
    assert batched.figures == single.figures
    assert batched.measures == single.measures
    assert any(k.startswith("volatility_pct.") for k in batched.measures)


def _portfolio_after(directory: Path, *, batched: bool) -> PortfolioSnapshot:
    directory.mkdir()
    rt = start_ledger(directory, starting_cash=Decimal("10000"))
    prices = (("BTC/USDT", 101.25, 60.0), ("ETH/USDT", 0.1 + 0.2, 60.0),
              ("BTC/USDT", 99.5, 120.0))  # the same symbol twice: the later price wins
    try:
        for i, (symbol, price) in enumerate((("BTC/USDT", "100"), ("ETH/USDT", "0.25"))):
            rt.ask("positions", RecordFill(Fill(
                f"f{i}", f"o{i}", symbol, Side.BUY, Decimal("2"), Decimal(price),
                Decimal("0"), at=float(i))))
        if batched:
            rt.tell("positions", MarkPrices(prices))
        else:
            for symbol, price, at in prices:
                rt.tell("positions", MarkPrice(symbol, Decimal(repr(price)), at))
        snap = rt.ask("positions", GetPortfolio())
    finally:
        rt.stop()
    assert isinstance(snap, PortfolioSnapshot)
    return snap


def test_mark_prices_mark_the_portfolio_as_single_marks_do(tmp_path: Path) -> None:
    single = _portfolio_after(tmp_path / "single", batched=False)
    batched = _portfolio_after(tmp_path / "batched", batched=True)
    assert batched.marks == single.marks == {
        "BTC/USDT": Decimal("99.5"), "ETH/USDT": Decimal(repr(0.1 + 0.2))}
    assert batched.equity == single.equity
    assert batched.unrealized_pnl == single.unrealized_pnl == Decimal("-1") + (
        Decimal(repr(0.1 + 0.2)) - Decimal("0.25")) * 2
    assert batched.exposure_by_symbol == single.exposure_by_symbol
