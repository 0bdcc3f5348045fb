"""The shipped dry run (``config.dry-run.yaml``): the demo's tree on a live venue's candles.

The config is checked to be the demo's (``config.yaml``) but for the market's settings and
where state goes, and to pass ``botvisor check-config``. Then the real ``botvisor run``
runs a copy of it against the fake Binance on 127.0.0.1 (real ccxt over HTTP). What the
copy changes: every state path goes into the test's directory, the market's ccxt urls
point at the fake, and it polls every 50 ms instead of every 6 s.

The fake serves one-minute candles of three symbols, all closed (their times are in the
past), taken from the synthetic market (seed 7), which makes the built-in strategies trade.
A feed file as a previous run would leave it puts the resume point before the first, and
the fake adds a few candles per poll: the feed delivers each once, as it appears. Trades
happen, each fill is priced at a close the fake served (with the paper exchange's
slippage), the ledger equals the paper exchange's fills, and SIGTERM ends the run with 0.
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.market.data import DEFAULT_SYMBOLS, SyntheticMarket
from actors.market.live_feed import write_resume
from tests.conftest import REPO, BotProcess
from tests.support.bot_helpers import (
    STATE_FILES,
    assert_ledger_matches_venue,
    count_rows,
    ledger_fills,
    settings,
    venue_fills,
    wait_until,
    write_config,
)
from tests.support.fake_venues import MINUTE_MS, Candle, FakeBinance

DRY_RUN = REPO / "config.dry-run.yaml"
DEMO = REPO / "config.yaml"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
CANDLES = 360  # per symbol
PER_POLL = 24  # candles added per symbol each time the feed has polled
SLIP = Decimal(5) / Decimal(10_000)  # the shipped paper exchange's slippage_bps
WAIT = 60.0


def _load(path: Path) -> dict[str, Any]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


@pytest.mark.unit
def test_the_dry_run_is_the_demo_but_for_the_market_and_where_state_goes() -> None:
    demo, dry = _load(DEMO), _load(DRY_RUN)
    market = settings(dry, "market")
    assert market["source"] == "ccxt" and market["exchange"] == "binance"
    assert market["timeframe"] == "1m" and list(market["symbols"]) == list(SYMBOLS)
    assert not {"apiKey", "secret"} & set(market.get("ccxt_options", {}))
    assert market["clock_file"].startswith("state/dry-run/")
    settings(demo, "market").clear()
    market.clear()
    assert (demo["runtime"].pop("state_dir"), dry["runtime"].pop("state_dir")) == (
        "state", "state/dry-run")
    for name, (key, filename) in STATE_FILES.items():
        if name != "market":
            assert settings(demo, name).pop(key) == f"state/{filename}", name
            assert settings(dry, name).pop(key) == f"state/dry-run/{filename}", name
    assert dry == demo


def test_the_dry_run_config_passes_check_config(bot_process: type[BotProcess]) -> None:
    bot = bot_process("check-config", str(DRY_RUN), cwd=REPO)
    assert bot.wait(timeout=60) == 0, "\n".join(bot.lines)
    assert "config.dry-run.yaml: ok" in bot.stdout()


def _series(first_ms: int) -> dict[str, list[Candle]]:
    """CANDLES one-minute candles per symbol from ``first_ms``, the synthetic market's."""
    market = SyntheticMarket({s: DEFAULT_SYMBOLS[s] for s in SYMBOLS}, seed=7,
                             start=first_ms / 1000, crash_at_bar=None)
    out: dict[str, list[Candle]] = {s: [] for s in SYMBOLS}
    for _ in range(CANDLES):
        for b in market.step():
            out[b.symbol].append((round(b.at * 1000), repr(b.open), repr(b.high),
                                  repr(b.low), repr(b.close), repr(b.volume)))
    return out


def _paper(close: str, side: str) -> Decimal:
    slip = 1 + SLIP if side == "buy" else 1 - SLIP
    return (Decimal(close) * slip).quantize(Decimal("1e-8"))


def test_a_dry_run_trades_on_the_venues_candles_and_the_ledger_equals_the_fills(
        bot_process: type[BotProcess], tmp_path: Path) -> None:
    venue = FakeBinance(extra_markets=(("ETH", "USDT"), ("SOL", "USDT")))
    try:
        now_ms = math.floor(time.time() * 1000)
        first = now_ms - now_ms % MINUTE_MS - (CANDLES + 1) * MINUTE_MS  # all closed
        series = _series(first)
        state = tmp_path / "state"
        raw = _load(DRY_RUN)
        raw["runtime"]["state_dir"] = str(state)
        for name, (key, filename) in STATE_FILES.items():
            settings(raw, name)[key] = str(state / filename)
        market = settings(raw, "market")
        market["clock_file"] = str(state / "market_feed.json")
        api = venue.url + "/api/v3"
        market["ccxt_options"] |= {"urls": {"api": {"public": api, "private": api}},
                                   "timeout": 3000}
        market["poll_interval"] = 0.05
        market["transport"] = "rest"  # the fake's candles by REST; the websocket's own tests
        #                               are in tests/market/test_live_feed_ws.py
        market["catch_up"] = False  # its candles are history (they end before the run
        #                             starts): traded on as they appear, not caught up on
        config = write_config(raw, tmp_path / "config.dry-run.yaml")
        state.mkdir()
        write_resume(state / "market_feed.json", "binance", "1m",
                     {s: (first - MINUTE_MS) / 1000 for s in SYMBOLS})

        shown = 0
        for symbol, candles in series.items():
            venue.set_candles(symbol.replace("/", ""), candles[:PER_POLL])
        bot = bot_process("run", "--config", str(config), cwd=tmp_path)
        bot.wait_for_line(r"tree is up", timeout=WAIT)
        while shown < CANDLES:
            goal = venue.count("GET /api/v3/klines") + len(SYMBOLS)  # one more poll
            wait_until(lambda g=goal: venue.count("GET /api/v3/klines") >= g or None,
                       timeout=WAIT, what="the feed polling")
            shown = min(CANDLES, shown + PER_POLL)
            for symbol, candles in series.items():
                venue.set_candles(symbol.replace("/", ""), candles[:shown])
        fills = state / "paper_exchange.db"
        wait_until(lambda: count_rows(fills, "fills") >= 4 or None, timeout=WAIT,
                   what="trades at the paper exchange")
        ledger = state / "ledger.db"
        wait_until(lambda: count_rows(ledger, "fills") == count_rows(fills, "fills") or None,
                   timeout=WAIT, what="the ledger to record every fill")
        bot.signal(signal.SIGTERM)
        assert bot.wait(timeout=WAIT) == 0, "\n".join(bot.lines[-30:])
    finally:
        venue.close()

    made = venue_fills(fills)
    sides = Counter(f.side for f in made)
    assert sides["buy"] >= 1 and sides["sell"] >= 1, sides
    assert_ledger_matches_venue(ledger_fills(ledger), made)
    closes = {s: {c[4] for c in candles} for s, candles in series.items()}
    for f in made:  # priced at a close the venue served, with the same slippage
        assert any(_paper(c, f.side) == f.price for c in closes[f.symbol]), f
    assert venue.unserved == []
    assert not [line for line in bot.lines if "Traceback" in line]


def test_the_local_binance_of_the_docs_writes_a_config_that_passes_check_config(
        bot_process: type[BotProcess], tmp_path: Path) -> None:
    """docs/dry-run.md's offline dry run: ``tests.support.live_fake`` points the shipped dry
    run at the local fakes, with its state under ``--out`` and 1s candles scaled in."""
    from tests.support.fake_venues import FakeBinanceStream
    from tests.support.live_fake import local_config

    venue, stream = FakeBinance(), FakeBinanceStream()
    try:
        config = local_config(tmp_path / "local", venue, stream, "1s")
        ws = stream.url
    finally:
        stream.close()
        venue.close()
    raw = _load(config)
    market = settings(raw, "market")
    assert market["timeframe"] == "1s"
    assert market["ccxt_options"]["urls"]["api"]["ws"]["spot"] == ws
    assert settings(raw, "breaker")["volatility"]["window_seconds"] == 60  # 3600 / 60
    assert all(str(tmp_path) in settings(raw, name)[key]
               for name, (key, _) in STATE_FILES.items())
    bot = bot_process("check-config", str(config), cwd=tmp_path)
    assert bot.wait(timeout=60) == 0, "\n".join(bot.lines)
