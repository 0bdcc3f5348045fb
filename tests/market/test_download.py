"""``botvisor download-data`` against the fake venues (real ccxt, servers on 127.0.0.1):
paging, resuming, a 429 storm, a malformed candle and a gap, the candle still forming, and
bad input (exit 2, the thing at fault named, no traceback). One run is a real subprocess."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from actors.market.contract import Bar
from actors.market.data import CsvReplay
from actors.market.download import DownloadData
from actors.market.history import last_timestamp
from supervisor.host.cli import main
from tests.support.fake_venues import MARKET_ID, MINUTE_MS, T0, FakeBinance, FakeKraken, candles

REPO = Path(__file__).resolve().parents[2]
KLINES = "GET /api/v3/klines"


@pytest.fixture
def binance() -> Iterator[FakeBinance]:
    fake = FakeBinance(extra_markets=(("ETH", "USDT"),))
    yield fake
    fake.close()
    assert fake.unserved == []


def binance_options(tmp_path: Path, venue: FakeBinance, **extra: object) -> Path:
    api = venue.url + "/api/v3"
    path = tmp_path / "ccxt.yaml"
    path.write_text(yaml.safe_dump({
        "urls": {"api": {"public": api, "private": api}},
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False, "defaultType": "spot"},
        "timeout": 3000} | extra))
    return path


def argv(options: Path, out: Path, *more: str, exchange: str = "binance",
         symbols: str = "BTC/USDT", since: int = T0, until: int | None = None) -> list[str]:
    args = ["download-data", "--exchange", exchange, "--symbols", symbols, "--timeframe",
            "1m", "--since", str(since), "--dir", str(out), "--ccxt-options", str(options),
            *more]
    return args + (["--until", str(until)] if until is not None else [])


def bars(directory: Path) -> list[Bar]:
    items = list(CsvReplay(directory))
    assert all(isinstance(b, Bar) for b in items), items
    return [b for b in items if isinstance(b, Bar)]


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "supervisor.host.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_pages_through_the_venue_and_a_second_run_adds_only_new_rows(
    binance: FakeBinance, tmp_path: Path
) -> None:
    series = candles(T0, 3000)
    binance.set_candles(MARKET_ID, series[:2500])
    options, out = binance_options(tmp_path, binance), tmp_path / "data"
    done = run_cli(argv(options, out, until=T0 + 2500 * MINUTE_MS))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert binance.count(KLINES) == 3  # 1000 + 1000 + 500
    assert "BTC/USDT: 2500 candles written" in done.stdout and "0 gaps, 0 bad" in done.stdout
    assert "BTC/USDT: +1000 candles" in done.stderr  # plain lines: not a terminal
    first = bars(out)
    assert [b.at * 1000 for b in first] == [c[0] for c in series[:2500]]
    assert [b.close for b in first] == [float(c[4]) for c in series[:2500]]
    assert (out / "BTC_USDT.csv").read_text().startswith("timestamp,open,high,low,close,"
                                                         "volume\n")

    binance.set_candles(MARKET_ID, series)  # the venue has 500 more now
    again = run_cli(argv(options, out, until=T0 + 3000 * MINUTE_MS))
    assert again.returncode == 0, again.stderr
    assert "BTC/USDT: 500 candles written" in again.stdout
    assert binance.count(KLINES) == 4
    both = bars(out)  # CsvReplay refuses a repeated timestamp: none is
    assert [b.at * 1000 for b in both] == [c[0] for c in series]
    assert last_timestamp(out / "BTC_USDT.csv") == series[-1][0]

    third = run_cli(argv(options, out, until=T0 + 3000 * MINUTE_MS))
    assert third.returncode == 0 and "0 candles written" in third.stdout
    assert binance.count(KLINES) == 4  # nothing left to ask for
    assert len(bars(out)) == 3000


def test_a_429_storm_is_waited_out_within_the_retries(
    binance: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.set_candles(MARKET_ID, candles(T0, 50))
    binance.storm(3)
    out = tmp_path / "data"
    code = main(argv(binance_options(tmp_path, binance), out, until=T0 + 50 * MINUTE_MS))
    assert code == 0, capsys.readouterr().err
    assert binance.count(KLINES) == 4
    assert len(bars(out)) == 50
    # a storm longer than the retries: exit 2, the venue named, and the rows had stay
    binance.storm(10)
    binance.set_candles(MARKET_ID, candles(T0, 80))
    code = main(argv(binance_options(tmp_path, binance), out, "--retries", "2",
                     until=T0 + 80 * MINUTE_MS))
    err = capsys.readouterr().err
    assert code == 2 and "binance cannot be reached (DDoSProtection)" in err
    assert len(bars(out)) == 50


def test_a_bad_candle_and_a_gap_are_reported_not_written(
    binance: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = candles(T0, 20)
    bad = series[5]
    series[5] = (bad[0], bad[1], bad[2], "x", bad[4], bad[5])  # the low is not a number
    del series[10:13]  # a gap of three
    binance.set_candles(MARKET_ID, series)
    out = tmp_path / "data"
    code = main(argv(binance_options(tmp_path, binance), out, "--page-limit", "7",
                     until=T0 + 20 * MINUTE_MS))
    captured = capsys.readouterr()
    assert code == 1, captured.err  # written, but not clean
    assert "bad candle: BTC/USDT at 2026-01-01T00:05Z: not_a_number" in captured.err
    assert ("gap: BTC/USDT has no candle from 2026-01-01T00:10Z to 2026-01-01T00:12Z "
            "(3 missing)") in captured.err
    assert "BTC/USDT: 16 candles written" in captured.out
    assert "1 gaps, 1 bad candles" in captured.out and "  gap: BTC/USDT" in captured.out
    written = [int(b.at * 1000) for b in bars(out)]
    assert written == [c[0] for c in series if c is not series[5]]


def test_the_candle_still_forming_is_not_written(
    binance: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forming = T0 + 5 * MINUTE_MS
    start = T0
    binance.set_candles(MARKET_ID, candles(start, 6))  # five closed, the last forming
    out = tmp_path / "data"
    command = DownloadData(clock=lambda: (forming + MINUTE_MS // 2) / 1000)  # mid-candle
    parser = argparse.ArgumentParser()
    command.configure(parser)
    code = command.run(parser.parse_args(argv(binance_options(tmp_path, binance), out,
                                              since=start)[1:]))
    assert code == 0, capsys.readouterr().err
    assert [int(b.at * 1000) for b in bars(out)] == [start + i * MINUTE_MS for i in range(5)]


def test_kraken_pages_by_its_cursor_within_ccxt_throttle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kraken = FakeKraken()
    try:
        series = candles(T0, 1000)
        kraken.set_candles("XXBTZUSD", series)
        options = tmp_path / "kraken.yaml"
        options.write_text(yaml.safe_dump({"urls": {"api": {"public": kraken.url}},
                                           "rateLimit": 200}))
        out = tmp_path / "data"
        began = time.monotonic()
        code = main(argv(options, out, exchange="kraken", symbols="BTC/USD",
                         until=T0 + 1000 * MINUTE_MS))
        took = time.monotonic() - began
        assert code == 0, capsys.readouterr().err
        assert kraken.count("/0/public/OHLC") == 2  # 720, then the rest
        assert [int(b.at * 1000) for b in bars(out)] == [c[0] for c in series]
        assert (out / "BTC_USD.csv").exists()
        # four requests (pairs, assets, two pages) spaced by the throttle's 200 ms
        assert took >= 0.55
        assert kraken.unserved == []
    finally:
        kraken.close()


@pytest.mark.parametrize(("change", "named"), [
    ({"exchange": "binanze"}, "--exchange 'binanze' is not a ccxt exchange id"),
    ({"timeframe": "7x"}, "timeframe '7x' is not a number and a unit"),
    ({"timeframe": "7m"}, "binance has no timeframe '7m'"),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "--since 2026-02-01T00:00Z is not before"),
    ({"since": "last week"}, "--since 'last week' is neither ms"),
    ({"symbols": "BTC/USDT,DOGE/USDT"}, "binance does not list DOGE/USDT"),
    ({"dir": "FILE"}, "is not a writable folder"),
    ({"down": True}, "binance cannot be reached (NetworkError)"),
])
def test_bad_input_exits_2_naming_the_thing_at_fault(
    binance: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    change: dict[str, object], named: str
) -> None:
    binance.set_candles(MARKET_ID, candles(T0, 5))
    options = binance_options(tmp_path, binance)
    if change.get("down"):
        binance.close()  # the network is down: nothing listens there any more
    a = {"exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1m", "since": str(T0),
         "until": str(T0 + 5 * MINUTE_MS), "dir": str(tmp_path / "data")}
    a.update({k: str(v) for k, v in change.items() if k != "down"})
    if a["dir"] == "FILE":
        (tmp_path / "file").write_text("")
        a["dir"] = str(tmp_path / "file" / "data")
    args = ["download-data", "--ccxt-options", str(options), "--retries", "1"]
    for key, value in a.items():
        args += [f"--{key}", value]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and named in err, err
    assert err.startswith("botvisor download-data: ") and "Traceback" not in err


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    done = run_cli(["download-data", "--exchange", "nosuchvenue", "--symbols", "A/B",
                    "--since", "2026-01-01", "--dir", str(tmp_path)])
    assert done.returncode == 2
    assert done.stderr == ("botvisor download-data: --exchange 'nosuchvenue' is not a ccxt "
                           "exchange id\n")


def test_a_csv_that_is_not_the_replay_layout_is_refused_by_name(
    binance: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "BTC_USDT.csv").write_text("time,price\n1,2\n")
    code = main(argv(binance_options(tmp_path, binance), out, until=T0 + MINUTE_MS))
    err = capsys.readouterr().err
    assert code == 2 and "BTC_USDT.csv: its header is 'time,price'" in err
