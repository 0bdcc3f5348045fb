"""A local Binance that plays live candles, for a dry run with no network (docs/dry-run.md).

``python -m tests.support.live_fake --out DIR`` starts the test suite's fake Binance (REST
klines) and its kline websocket on 127.0.0.1, with the shipped dry run's symbols. Their
candles are the built-in synthetic market's, on real time: ``--history`` closed candles up
to now, then one closes every timeframe (pushed closed on the stream and served by REST),
with its forming version pushed every second before. It writes ``DIR/config.yaml``:
``config.dry-run.yaml`` with the market pointed at these servers, the ``--timeframe``
(``1s`` makes a minute's wait a second's), and every state file under ``DIR/state``. Then
``botvisor run --config DIR/config.yaml`` dry-runs on it, as on Binance. Ctrl-C stops it.

It is the fakes of the tests, not a venue: no orders are served to the bot (its exchange
is the paper exchange), no TLS, one process.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from actors.market.candles import timeframe_ms
from actors.market.contract import Bar
from actors.market.data import DEFAULT_SYMBOLS, SyntheticMarket
from tests.support.bot_helpers import STATE_FILES, settings, write_config
from tests.support.fake_venues import Candle, FakeBinance, FakeBinanceStream

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def _candle(bar: Bar) -> Candle:
    return (round(bar.at * 1000), repr(bar.open), repr(bar.high), repr(bar.low),
            repr(bar.close), repr(bar.volume))


def local_config(out: Path, venue: FakeBinance, stream: FakeBinanceStream,
                 timeframe: str) -> Path:
    """``config.dry-run.yaml`` pointed at ``venue`` and ``stream``, its state in ``out``."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "config.dry-run.yaml").read_text("utf-8"))
    state = out / "state"
    raw["runtime"]["state_dir"] = str(state)
    for name, (key, filename) in STATE_FILES.items():
        settings(raw, name)[key] = str(state / filename)
    market = settings(raw, "market")
    market["clock_file"] = str(state / "market_feed.json")
    assert market["timeframe"] == "1m", "the shipped dry run's timeframe"
    market["timeframe"] = timeframe
    api = venue.url + "/api/v3"
    market["ccxt_options"]["urls"] = {"api": {"public": api, "private": api,
                                              "ws": {"spot": stream.url}}}
    market["ccxt_options"]["options"] |= {"fetchCurrencies": False, "fetchMargins": False}
    market["ccxt_options"]["timeout"] = 3000
    # a shorter timeframe runs the market faster: the rules measured in market time (the
    # volatility window, the exits' time stop) are scaled with it, so they mean as many
    # candles as shipped; the breaker's recovery too, so a trip lasts as many candles
    scale = timeframe_ms(timeframe) / timeframe_ms("1m")  # the shipped timeframe
    breaker = settings(raw, "breaker")
    breaker["volatility"]["window_seconds"] *= scale
    for key in ("recovery_timeout", "max_recovery_timeout"):
        breaker[key] = max(1.0, breaker[key] * scale)
    exits = settings(raw, "exits")
    if exits.get("time_stop_seconds"):
        exits["time_stop_seconds"] *= scale
    out.mkdir(parents=True, exist_ok=True)
    return write_config(raw, out / "config.yaml")


class LiveCandles:
    """Owns the synthetic market and plays it on the venue in real time."""

    def __init__(self, venue: FakeBinance, stream: FakeBinanceStream, timeframe: str,
                 history: int, seed: int = 7) -> None:
        self.venue, self.stream, self.timeframe = venue, stream, timeframe
        self.tf = timeframe_ms(timeframe) / 1000
        first = math.floor(time.time() / self.tf) * self.tf - history * self.tf
        self.market = SyntheticMarket({s: DEFAULT_SYMBOLS[s] for s in SYMBOLS}, seed=seed,
                                      bar_seconds=self.tf, start=first, crash_at_bar=None)
        self.series: dict[str, list[Candle]] = {s: [] for s in SYMBOLS}
        for _ in range(history):
            self._close(self.market.step(), push=False)
        self.next = self.market.step()  # forming now
        self.stop = threading.Event()

    def _close(self, bars: list[Bar], *, push: bool) -> None:
        for bar in bars:
            candle = _candle(bar)
            self.series[bar.symbol].append(candle)
            self.venue.set_candles(bar.symbol.replace("/", ""), self.series[bar.symbol],
                                   round(self.tf * 1000))
            if push:
                self.stream.push(bar.symbol.replace("/", ""), candle, closed=True,
                                 interval=self.timeframe, interval_ms=round(self.tf * 1000))

    def run(self) -> None:
        """Until ``stop``: the forming candle every second, its close at its end."""
        while not self.stop.is_set():
            end = self.next[0].at + self.tf
            if time.time() >= end:
                self._close(self.next, push=True)
                self.next = self.market.step()
                continue
            for bar in self.next:
                self.stream.push(bar.symbol.replace("/", ""), _candle(bar), closed=False,
                                 interval=self.timeframe, interval_ms=round(self.tf * 1000))
            self.stop.wait(min(1.0, max(0.0, end - time.time())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.live_fake",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="where config.yaml and its state go")
    parser.add_argument("--timeframe", default="1m", help="1m as shipped; 1s to go faster")
    parser.add_argument("--history", type=int, default=300,
                        help="closed candles before now, per symbol")
    args = parser.parse_args(argv)
    try:
        timeframe_ms(args.timeframe)
    except ValueError as exc:
        parser.error(str(exc))
    venue = FakeBinance(extra_markets=(("ETH", "USDT"), ("SOL", "USDT")))
    stream = FakeBinanceStream()
    try:
        config = local_config(args.out, venue, stream, args.timeframe)
        player = LiveCandles(venue, stream, args.timeframe, args.history)
        signal.signal(signal.SIGTERM, lambda *_: player.stop.set())
        print(f"a local Binance on {venue.url} (REST) and {stream.url} (websocket), "
              f"{', '.join(SYMBOLS)} on {args.timeframe} candles", flush=True)
        print(f"in another terminal: botvisor run --config {config}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            player.run()
    finally:
        stream.close()
        venue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
