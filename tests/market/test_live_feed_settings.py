"""The live feed's pure parts: the market's ``source: ccxt`` settings (what is accepted,
what is refused and how the refusal names the key), the default poll interval, and the
resume file (written atomically, read back; another feed's file is ignored, a damaged one
refused naming the file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actors.market.feed import MarketActor
from actors.market.live_feed import ResumeError, default_poll_interval, read_resume, write_resume

pytestmark = pytest.mark.unit


def live(**extra: Any) -> MarketActor.Settings:
    return MarketActor.Settings.model_validate(
        {"source": "ccxt", "exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"]} | extra)


def test_ccxt_settings_and_their_defaults() -> None:
    s = live(timeframe="5m", ccxt_options={"urls": {"api": {"public": "http://x"}}})
    assert s.live_symbols == ("BTC/USDT", "ETH/USDT") and s.transport == "auto"
    assert s.stale_after == 3.0 and s.live_poll_interval == 30.0  # a tenth of 5m
    assert live(poll_interval=0.5).live_poll_interval == 0.5
    assert default_poll_interval("1m") == 6.0 and default_poll_interval("1d") == 60.0


@pytest.mark.parametrize(("extra", "names"), [
    ({"exchange": None}, "exchange"),
    ({"exchange": "no-such-venue"}, "not a ccxt exchange id"),
    ({"symbols": None}, "symbols"),
    ({"symbols": []}, "symbols"),
    ({"symbols": ["BTC/USDT", "BTC/USDT"]}, "listed twice"),
    ({"timeframe": "7x"}, "not a ccxt timeframe"),
    ({"exchange": "bitstamp", "transport": "ws"}, "transport"),
    ({"transport": "grpc"}, "transport"),
    ({"stale_after": 0.5}, "stale_after"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"ccxt_options": {"apiKey": "k", "secret": "s"}}, "apiKey, secret"),
    ({"ccxt_options": ["not", "a", "mapping"]}, "ccxt_options"),
])
def test_bad_ccxt_settings_are_refused_naming_the_key(extra: dict[str, Any],
                                                      names: str) -> None:
    with pytest.raises(ValidationError, match=names):
        live(**extra)


def test_a_list_of_symbols_is_only_for_the_live_feed() -> None:
    with pytest.raises(ValidationError, match="mapping of symbol to start price"):
        MarketActor.Settings.model_validate({"symbols": ["BTC/USDT"]})
    assert MarketActor.Settings.model_validate(
        {"symbols": {"BTC/USDT": 100.0}}).symbols == {"BTC/USDT": 100.0}


def test_the_resume_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state" / "feed.json"
    assert read_resume(path, "binance", "1m") == {}  # no file: a fresh start
    write_resume(path, "binance", "1m", {"ETH/USDT": 120.0, "BTC/USDT": 60.0})
    assert read_resume(path, "binance", "1m") == {"BTC/USDT": 60.0, "ETH/USDT": 120.0}
    assert [p.name for p in path.parent.iterdir()] == ["feed.json"]  # no temporary left
    # another venue's or timeframe's file (or the synthetic market's clock): a fresh start
    assert read_resume(path, "kraken", "1m") == {}
    assert read_resume(path, "binance", "5m") == {}
    path.write_text(json.dumps({"version": 1, "source": "synthetic", "index": 3}))
    assert read_resume(path, "binance", "1m") == {}


@pytest.mark.parametrize("text", [
    "{not json",
    json.dumps({"source": "ccxt", "exchange": "binance", "timeframe": "1m"}),
    json.dumps({"source": "ccxt", "exchange": "binance", "timeframe": "1m",
                "last": {"BTC/USDT": "soon"}}),
    json.dumps({"source": "ccxt", "exchange": "binance", "timeframe": "1m",
                "last": {"BTC/USDT": -60}}),
])
def test_a_damaged_resume_file_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "feed.json"
    path.write_text(text)
    with pytest.raises(ResumeError, match=r"feed\.json is damaged"):
        read_resume(path, "binance", "1m")
