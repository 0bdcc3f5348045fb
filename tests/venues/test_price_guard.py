"""The price guard on settings objects: a live venue's market must be a live feed of it.

The ccxt exchange's settings judge the market they name (``check_peers``): a live feed of
the same venue carrying every traded symbol passes; a synthetic market, a CSV replay, a feed
of another venue, a feed missing a symbol, a fallback that is any of those, or a market
whose settings cannot be told are refused, naming the market by its tree path and saying
how to fix it. ``allow_unmatched_prices`` turns each refusal into a start-up warning. The
last tests run the same through the host's wiring check on built specs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.market.feed import MarketActor
from actors.venues.ccxt_exchange import CcxtExchange
from supervisor.host.wiring import Configured, PeerView, check_wiring, wiring_warnings
from supervisor.spec import ChildSpec, Fallback, SupervisorSpec

pytestmark = pytest.mark.unit

MARKET = "tree > pipeline > market"
FIX = ("make the market a live feed of the venue (source: ccxt, exchange: binance, with "
       "these symbols), or set allow_unmatched_prices: true on the exchange to run anyway")
PAIRS = ("BTC/USDT", "ETH/USDT")


def exchange(**overrides: Any) -> CcxtExchange.Settings:
    raw = {"exchange": "binance", "symbols": list(PAIRS), "api_key_env": "BV_KEY",
           "secret_env": "BV_SECRET"} | overrides
    return CcxtExchange.Settings.model_validate(raw)


def feed(venue: str = "binance", symbols: tuple[str, ...] = PAIRS) -> MarketActor.Settings:
    return MarketActor.Settings.model_validate(
        {"source": "ccxt", "exchange": venue, "symbols": list(symbols)})


def synthetic() -> MarketActor.Settings:
    return MarketActor.Settings()


def market(settings: Any, fallback: Any = None) -> dict[str, PeerView]:
    spare = None if fallback is None else PeerView("market", f"{MARKET} (fallback)", fallback)
    return {"market": PeerView("market", MARKET, settings, spare)}


def refusals(settings: CcxtExchange.Settings, peers: dict[str, PeerView]) -> list[str]:
    found = settings.check_peers(peers)
    assert all(key == "market" for key, _ in found)
    return [reason for _, reason in found]


def test_a_live_feed_of_the_same_venue_with_every_symbol_passes() -> None:
    assert exchange().check_peers(market(feed())) == []
    assert exchange(symbols=["ETH/USDT"]).check_peers(market(feed())) == []  # a subset
    assert exchange().peer_warnings(market(feed())) == []  # no override: nothing to say


def test_a_synthetic_market_is_refused_saying_why_and_how_to_fix_it() -> None:
    assert refusals(exchange(), market(synthetic())) == [
        f"a live venue (binance) must be priced by its own live feed, but {MARKET} is "
        f"source 'synthetic', not a live feed of binance; {FIX}"]


def test_a_csv_replay_is_refused(tmp_path: Path) -> None:
    (tmp_path / "BTC_USDT.csv").write_text("timestamp,open,high,low,close,volume\n")
    replay = MarketActor.Settings(source="csv", csv_dir=str(tmp_path))
    [reason] = refusals(exchange(), market(replay))
    assert f"{MARKET} is source 'csv', not a live feed of binance" in reason


def test_a_live_feed_of_another_venue_is_refused() -> None:
    [reason] = refusals(exchange(), market(feed("kraken")))
    assert f"{MARKET} is a live feed of 'kraken', not of 'binance'" in reason
    assert reason.endswith(FIX)


def test_a_feed_that_lacks_a_traded_symbol_is_refused_naming_the_symbols() -> None:
    traded = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    [reason] = refusals(exchange(symbols=traded), market(feed(symbols=("ETH/USDT",))))
    assert (f"{MARKET} (a live feed of binance) does not carry BTC/USDT, SOL/USDT, XRP/USDT, "
            "which the venue trades") in reason
    many = [f"C{i}/USDT" for i in range(12)]
    [reason] = refusals(exchange(symbols=many), market(feed()))
    assert "C0/USDT, C1/USDT" in reason and "C7/USDT and 4 more" in reason
    assert "C8/USDT" not in reason


def test_the_markets_fallback_is_held_to_the_same() -> None:
    assert refusals(exchange(), market(feed(), fallback=synthetic())) == [
        f"a live venue (binance) must be priced by its own live feed, but {MARKET} "
        f"(fallback) is source 'synthetic', not a live feed of binance; {FIX}"]
    assert exchange().check_peers(market(feed(), fallback=feed())) == []


def test_a_market_whose_settings_cannot_be_told_is_refused() -> None:
    [reason] = refusals(exchange(), market(None))
    assert f"{MARKET} is built without settings, so it cannot be told" in reason
    [reason] = refusals(exchange(), market(object()))  # settings of some other kind
    assert f"{MARKET} has no source setting, not a live feed of binance" in reason


def test_a_sandbox_exchange_is_guarded_too() -> None:
    [reason] = refusals(exchange(sandbox=True), market(synthetic()))
    assert reason.startswith("a live venue (binance sandbox) must be priced by its own live "
                             f"feed, but {MARKET} is source 'synthetic'")
    assert exchange(sandbox=True).check_peers(market(feed())) == []


def test_the_override_lets_it_through_and_warns_naming_the_market() -> None:
    override = exchange(allow_unmatched_prices=True)
    assert override.check_peers(market(synthetic())) == []
    assert override.peer_warnings(market(synthetic())) == [(
        "allow_unmatched_prices",
        "the price guard is OFF: orders on binance will be priced by a market that is not "
        f"the venue's ({MARKET} is source 'synthetic', not a live feed of binance)")]
    # with a matched feed, it still says that the guard is off
    [(key, warning)] = override.peer_warnings(market(feed()))
    assert key == "allow_unmatched_prices"
    assert warning.startswith(f"the price guard is off, though {MARKET} is a live feed of "
                              "binance now")


# -- through the host's wiring check ----------------------------------------------------------
def tree(exchange_settings: CcxtExchange.Settings, market_settings: MarketActor.Settings
         ) -> SupervisorSpec:
    pipeline = SupervisorSpec(children=(
        ChildSpec(id="market", factory=Configured(MarketActor, market_settings),
                  fallback=Fallback(Configured(MarketActor, market_settings))),))
    return SupervisorSpec(children=(
        ChildSpec(id="exchange", factory=Configured(CcxtExchange, exchange_settings)),
        ChildSpec(id="pipeline", supervisor=pipeline)))


def guard_problems(spec: SupervisorSpec) -> list[tuple[str, str]]:
    """The wiring's problems but for the market's own peers (not in this small tree)."""
    return [(k, r) for k, r in check_wiring(spec) if k.startswith("tree > exchange")]


def test_the_wiring_check_names_both_children_by_their_tree_paths() -> None:
    found = guard_problems(tree(exchange(), synthetic()))
    assert [k for k, _ in found] == ["tree > exchange > settings.market"] * 2
    assert f"but {MARKET} is source 'synthetic'" in found[0][1]
    assert f"but {MARKET} (fallback) is source 'synthetic'" in found[1][1]
    assert guard_problems(tree(exchange(), feed())) == []
    override = tree(exchange(allow_unmatched_prices=True), synthetic())
    assert guard_problems(override) == []
    warnings = wiring_warnings(override)
    assert [k for k, _ in warnings] == ["tree > exchange > settings.allow_unmatched_prices"] * 2
    assert all("orders on binance will be priced by a market that is not the venue's" in w
               for _, w in warnings)


def test_a_market_that_is_no_market_is_refused_before_the_guard() -> None:
    spec = SupervisorSpec(children=(
        ChildSpec(id="exchange", factory=Configured(CcxtExchange, exchange(market="exchange"))),))
    assert check_wiring(spec) == [(
        "tree > exchange > settings.market",
        "'exchange' is actors.venues.ccxt_exchange:CcxtExchange, which publishes nothing, "
        "not MarketCursor")]
