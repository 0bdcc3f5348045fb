"""The ccxt adapter, with real ccxt (its ``binance`` class, spot) against a local HTTP server.

The server is :class:`tests.support.fake_venues.FakeBinance` (127.0.0.1, random port): the
few Binance spot REST endpoints the adapter uses, with the API key and HMAC signature
checked, its own orders and trades, a request log, and faults a test plans per endpoint.

Time for retries and lookups comes from a ManualClock: the adapter's Retrier sleeps on it,
so backoff waits of 30 s cost nothing; real time only passes in ccxt's socket timeouts.
The adapter runs as a real actor under ``supervisor.Runtime``; one test runs it with the
real executor and ledger.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.common.messages import Side
from actors.execution.contract import ExecutorStats, GetExecutorStats, client_order_id
from actors.execution.executor import ExecutorActor
from actors.portfolio.contract import GetPortfolio, HasOrder, PortfolioSnapshot
from actors.risk.contract import BreakerGate, BreakerState
from actors.strategies.contract import Signal
from actors.venues.ccxt_client import OrderStatusUnknown, VenueUnavailable
from actors.venues.ccxt_exchange import CcxtExchange
from actors.venues.ccxt_settings import CredentialsError, resolve_credentials
from actors.venues.ccxt_translate import ExchangeStats, GetExchangeStats, GetTicker, Ticker
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    LookupOrder,
    OpenOrder,
    OrderResult,
    PlaceOrder,
)
from supervisor import (
    Backoff,
    ChildSpec,
    ManualClock,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.host.config import ConfigError, parse_config
from tests.support.bot_helpers import wait_until
from tests.support.fake_venues import (
    KEY,
    KEY_ENV,
    SECRET,
    SECRET_ENV,
    SYMBOL,
    T0,
    FakeBinance,
)
from tests.support.position_helpers import Inbox, ledger_spec
from tests.support.venue_contract import assert_answers_as_a_venue
from tests.venues.live_config import child, documented_example, with_example

INSUFFICIENT = (400, {"code": -2010,
                      "msg": "Account has insufficient balance for requested action."})


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture
def venue(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    fake = FakeBinance()
    yield fake
    fake.close()
    assert fake.unserved == [], "the adapter called endpoints the test does not model"


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for rt in started:
        rt.stop()


def exchange_settings(venue: FakeBinance, **overrides: Any) -> dict[str, Any]:
    api = venue.url + "/api/v3"
    raw: dict[str, Any] = {
        "exchange": "binance",
        "symbols": [SYMBOL],
        "api_key_env": KEY_ENV,
        "secret_env": SECRET_ENV,
        "urls": {"api": {"public": api, "private": api}},
        # spot only, and no account-wide endpoints the local server does not serve
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False, "defaultType": "spot"},
        "timeout_ms": 500,
        "rate_limit": False,  # ccxt's own throttle would sleep in real time
        "retry": {"attempts": 3, "initial": 30.0, "maximum": 120.0, "jitter": 0},
        "lookup_interval": 2.0,
    }
    raw.update(overrides)
    return raw


def start_exchange(venue: FakeBinance, runtimes: list[Runtime], clock: ManualClock | None = None,
                   **overrides: Any) -> Runtime:
    settings = CcxtExchange.Settings.model_validate(exchange_settings(venue, **overrides))
    rt = Runtime(clock=clock or ManualClock(), ask_timeout=10)
    runtimes.append(rt)
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=(
        ChildSpec("exchange", factory=lambda: CcxtExchange(settings)),)))
    return rt


def stats(rt: Runtime) -> ExchangeStats:
    reply = rt.ask("exchange", GetExchangeStats())
    assert isinstance(reply, ExchangeStats)
    return reply


def place(rt: Runtime, coid: str, qty: str = "0.00345", side: Side = Side.BUY) -> OrderResult:
    reply = rt.ask("exchange", PlaceOrder(coid, SYMBOL, side, Decimal(qty)))
    assert isinstance(reply, OrderResult)
    return reply


CREATE = "POST /api/v3/order"
QUERY = "GET /api/v3/order"


# -- orders ------------------------------------------------------------------------------------
def test_a_market_order_fills_with_exact_fills_and_deterministic_ids(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes)
    result = place(rt, "bv-normal-1", "0.00345")

    order = venue.order("bv-normal-1")
    assert result == OrderResult("bv-normal-1", "filled", order.fills())
    first, second = result.fills
    assert (first.quantity, first.price, first.fee) == (
        Decimal("0.00100"), Decimal("43251.17"), Decimal("0.04325117"))
    assert (second.quantity, second.price) == (Decimal("0.00245"), Decimal("43251.18"))
    assert second.fee == Decimal("0.00000245") * Decimal("43251.18")  # BTC fee in USDT
    assert [f.fill_id for f in result.fills] == ["binance-BTCUSDT-5001", "binance-BTCUSDT-5002"]

    # The same fills, with the same ids, however they are read.
    assert rt.ask("exchange", LookupOrder("bv-normal-1")) == result
    assert rt.ask("exchange", GetVenueFills(None)) == list(result.fills)
    assert rt.ask("exchange", LookupOrder("bv-never-sent")) is None
    # The same client order id again: the known result, no second create.
    assert place(rt, "bv-normal-1", "0.00345") == result
    assert venue.count(CREATE) == 1
    sent = [p for m, p, p2 in venue.requests if m == "POST"]
    assert sent == ["/api/v3/order"]
    create = next(q for m, p, q in venue.requests if m == "POST")
    assert create["newClientOrderId"] == "bv-normal-1" and create["quantity"] == "0.00345"
    assert venue.auth_failures == 0  # every private request carried KEY and SECRET's signature
    assert stats(rt) == ExchangeStats("binance", 1, 0, 0, 0, 0)


def test_insufficient_balance_is_rejected_and_not_retried(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes)
    venue.plan(CREATE, INSUFFICIENT)
    result = place(rt, "bv-broke-1", "2.5")

    assert result.status == "rejected" and result.fills == ()
    assert "InsufficientFunds" in result.reason
    assert venue.count(CREATE) == 1
    # One lookup before the create (is it there already?), none after: nothing to settle.
    assert venue.endpoints()[-2:] == [QUERY, CREATE]
    assert stats(rt).rejected == 1 and stats(rt).ambiguous == 0


@pytest.mark.parametrize("lookup_method", ["fetch_order", "fetch_orders", "open_and_closed"])
@pytest.mark.parametrize("loss", ["record_then_hold", "record_then_drop"])
def test_accepted_order_whose_reply_was_lost_is_found_not_resubmitted(
    venue: FakeBinance, runtimes: list[Runtime], loss: str, lookup_method: str
) -> None:
    clock = ManualClock()
    rt = start_exchange(venue, runtimes, clock, lookup_method=lookup_method)
    venue.plan(CREATE, loss)
    result = place(rt, "bv-lost-1", "0.00345")

    assert venue.count(CREATE) == 1  # the venue saw exactly one create
    assert result == OrderResult("bv-lost-1", "filled", venue.order("bv-lost-1").fills())
    assert stats(rt) == ExchangeStats("binance", 1, 1, 0, 0, 0)
    assert clock.now() == 1000.0  # found at the first lookup: no waiting


def test_order_visible_only_at_the_second_lookup_is_still_found(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    clock = ManualClock()
    rt = start_exchange(venue, runtimes, clock, lookup_before_create=False)
    venue.plan(CREATE, "record_then_hold")
    venue.hidden_lookups = 1  # the venue's order index lags behind its matching engine
    result = place(rt, "bv-late-1")

    assert result.status == "filled" and result.fills == venue.order("bv-late-1").fills()
    assert venue.count(CREATE) == 1 and venue.count(QUERY) == 2
    assert clock.now() - 1000.0 == 2.0  # one lookup_interval on the injected clock


def test_create_that_failed_before_the_venue_recorded_it_is_reported_not_placed(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    clock = ManualClock()
    rt = start_exchange(venue, runtimes, clock, lookup_attempts=3)
    venue.plan(CREATE, (503, "Service Unavailable"))
    result = place(rt, "bv-gone-1")

    assert result.status == "rejected" and result.fills == ()
    assert result.reason.startswith("not placed: binance has no order bv-gone-1 after 3 ")
    assert venue.count(CREATE) == 1  # never resubmitted
    assert venue.count(QUERY) == 1 + 3  # the check before, three lookups after
    assert clock.now() - 1000.0 == 4.0  # two lookup intervals
    assert stats(rt) == ExchangeStats("binance", 1, 1, 1, 0, 0)


def test_unknown_outcome_is_an_error_never_a_guess(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes, lookup_before_create=False)
    venue.plan(CREATE, "record_then_drop")
    venue.always[QUERY] = (500, "Internal Server Error")
    with pytest.raises(OrderStatusUnknown, match=r"bv-unsure-1.*may exist at binance"):
        place(rt, "bv-unsure-1")
    assert venue.count(CREATE) == 1
    assert venue.count(QUERY) == 3 * 3  # three lookups, each retried three times

    # The venue recovers: the order (placed after all) is found by a lookup, and a PlaceOrder
    # for the same client order id answers it instead of creating another.
    del venue.always[QUERY]
    expected = OrderResult("bv-unsure-1", "filled", venue.order("bv-unsure-1").fills())
    assert rt.ask("exchange", LookupOrder("bv-unsure-1")) == expected
    assert place(rt, "bv-unsure-1") == expected
    assert venue.count(CREATE) == 1


def test_no_create_when_the_check_before_it_fails(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes)
    venue.always[QUERY] = (503, "Service Unavailable")
    with pytest.raises(VenueUnavailable, match=r"bv-precheck-1 not sent: could not check"):
        place(rt, "bv-precheck-1")
    assert venue.count(QUERY) == 3 and venue.count(CREATE) == 0


# -- reads: retries ----------------------------------------------------------------------------
TICKER = "GET /api/v3/ticker/24hr"
EXPECTED_TICKER = Ticker(SYMBOL, Decimal("43251.17"), Decimal("43251.16"), Decimal("43251.18"),
                         T0 / 1000)


def test_a_fetch_that_times_out_is_retried(venue: FakeBinance, runtimes: list[Runtime]) -> None:
    clock = ManualClock()
    rt = start_exchange(venue, runtimes, clock)
    venue.plan(TICKER, "hold")
    assert rt.ask("exchange", GetTicker(SYMBOL)) == EXPECTED_TICKER
    assert venue.count(TICKER) == 2
    assert clock.now() - 1000.0 == 30.0  # the first backoff, slept on the injected clock


def test_rate_limit_then_success_is_retried_on_the_injected_clock(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    clock = ManualClock()
    rt = start_exchange(venue, runtimes, clock)
    venue.plan(TICKER, (429, {"code": -1003, "msg": "Too many requests."}),
               (429, {"code": -1003, "msg": "Too many requests."}))
    # (the ask's own timeout would fail the test if the 90 s of backoff were slept for real)
    assert rt.ask("exchange", GetTicker(SYMBOL)) == EXPECTED_TICKER
    assert venue.count(TICKER) == 3
    assert clock.now() - 1000.0 == 30.0 + 60.0  # exponential backoff, on the injected clock


def test_5xx_on_a_fetch_is_retried(venue: FakeBinance, runtimes: list[Runtime]) -> None:
    rt = start_exchange(venue, runtimes)
    venue.add_order("bv-old-1", "BUY", "0.002")
    venue.plan("GET /api/v3/myTrades", (502, "Bad Gateway"), (504, "Gateway Timeout"))
    fills = rt.ask("exchange", GetVenueFills(None))
    assert fills == list(venue.order("bv-old-1").fills())
    assert venue.count("GET /api/v3/myTrades") == 3


def test_persistent_5xx_is_a_clear_error_after_n_attempts_with_no_secret_in_it(
    venue: FakeBinance, runtimes: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rt = start_exchange(venue, runtimes)
    venue.always[TICKER] = (500, f"upstream refused api key {KEY} with secret {SECRET}")
    with pytest.raises(VenueUnavailable) as info:
        rt.ask("exchange", GetTicker(SYMBOL))
    message = str(info.value)
    assert message.startswith("fetch_ticker: ExchangeNotAvailable: binance GET ")
    assert "upstream refused api key *** with secret ***" in message
    assert venue.count(TICKER) == 3  # retry.attempts
    assert KEY not in caplog.text and SECRET not in caplog.text
    assert "retrying" in caplog.text  # the retries were logged, masked

    del venue.always[TICKER]
    assert rt.ask("exchange", GetTicker(SYMBOL)) == EXPECTED_TICKER
    # Private requests: ccxt logs their headers (X-MBX-APIKEY) at DEBUG, scrubbed.
    assert place(rt, "bv-logged-1").status == "filled"
    assert "X-MBX-APIKEY': '***'" in caplog.text
    assert KEY not in caplog.text and SECRET not in caplog.text


# -- venue fills -------------------------------------------------------------------------------
def test_venue_fills_page_through_trades_and_keep_only_this_bots_orders(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes, trades_page_limit=3)
    a = venue.add_order("bv-a", "BUY", "0.003")  # two trades
    venue.add_order("manual-7", "BUY", "0.0005")  # someone else's order, same account
    b = venue.add_order("bv-b", "SELL", "0.0025", rest_fee="BNB")  # two trades
    c = venue.add_order("bv-c", "BUY", "0.0007")  # one trade

    everything = rt.ask("exchange", GetVenueFills(None))
    assert everything == [*a.fills(), *b.fills(), *c.fills()]
    # 6 trades in pages of 3 from a millisecond on: [a1 a2 m1] [m1 b1 b2] [b1 b2 c1] [c1]
    assert venue.count("GET /api/v3/myTrades") == 4
    assert rt.ask("exchange", GetVenueFills(b.time / 1000)) == [*b.fills(), *c.fills()]


def test_open_orders_lists_this_bots_orders_still_open_with_their_fills_so_far(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes)
    still = venue.add_order("bv-open", "BUY", "0.003")  # filled in part, still open
    still.status = "NEW"
    venue.add_order("manual-8", "BUY", "0.001").status = "NEW"  # not this bot's
    venue.add_order("bv-done", "SELL", "0.001")  # filled: not open
    (listed,) = rt.ask("exchange", GetOpenOrders())
    assert listed == OpenOrder(PlaceOrder("bv-open", SYMBOL, Side.BUY, Decimal("0.003")),
                               still.fills())


# -- the executor with this exchange ---------------------------------------------------------
class ClosedBreaker(SupervisedActor):
    """Publishes a CLOSED breaker gate, so the executor may trade."""

    def on_start(self) -> None:
        self.ctx.publish(BreakerGate(BreakerState.CLOSED))


def test_executor_and_ledger_record_the_fills_of_a_lost_reply_exactly_once(
    venue: FakeBinance, runtimes: list[Runtime], tmp_path: Path
) -> None:
    exchange = CcxtExchange.Settings.model_validate(exchange_settings(
        venue, retry={"attempts": 3, "initial": 0.01, "jitter": 0}, lookup_interval=0.01))
    rt = Runtime(ask_timeout=10)
    runtimes.append(rt)
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=(
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("breaker", factory=ClosedBreaker),
        ChildSpec("ledger", supervisor=ledger_spec(tmp_path)),
        ChildSpec("exchange", factory=lambda: CcxtExchange(exchange)),
        ChildSpec("executor", factory=ExecutorActor),
    )))

    def executor() -> ExecutorStats:
        reply = rt.ask("executor", GetExecutorStats())
        assert isinstance(reply, ExecutorStats)
        return reply

    wait_until(lambda: executor().venue_synced, timeout=10, what="the executor's venue sync")
    venue.plan(CREATE, "record_then_hold")
    rt.tell("executor", Signal("sig-1", "momentum", SYMBOL, Side.BUY, 43251.17, 1.0, "test",
                               stop_distance=865.0))
    wait_until(lambda: executor().fills_recorded >= 2, timeout=10, what="the fills in the ledger")

    coid = client_order_id("sig-1")
    order = venue.order(coid)
    assert venue.count(CREATE) == 1
    assert rt.ask("positions", HasOrder(coid)) is True
    snap = rt.ask("positions", GetPortfolio())
    assert isinstance(snap, PortfolioSnapshot)
    assert snap.positions[SYMBOL].quantity == Decimal(order.qty)
    db = sqlite3.connect(f"file:{tmp_path / 'ledger.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT fill_id, quantity, price, fee FROM fills ORDER BY seq").fetchall()
    finally:
        db.close()
    assert [(r[0], Decimal(r[1]), Decimal(r[2]), Decimal(r[3])) for r in rows] == [
        (f.fill_id, f.quantity, f.price, f.fee) for f in order.fills()]

    # The executor restarts: its venue sync reads the same fills and records none twice.
    reads = venue.count("GET /api/v3/myTrades")
    rt.restart_child("executor")
    wait_until(lambda: executor().venue_synced, timeout=10, what="the second venue sync")
    assert venue.count("GET /api/v3/myTrades") > reads
    assert executor().recovered == 0
    assert venue.count(CREATE) == 1


# -- settings and secrets ----------------------------------------------------------------------
def _tree_with(settings: dict[str, Any]) -> dict[str, Any]:
    """The shipped tree with the documented exchange (these ``settings``) and its live feed
    of binance: it passes the price guard, so a problem found is one of these settings."""
    raw = with_example()
    child(raw, "exchange")["settings"] = settings
    return raw


def _problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "test.yaml")
    return str(info.value)


def test_config_refuses_a_secret_in_the_file_and_names_the_key() -> None:
    base = {"exchange": "binance", "symbols": [SYMBOL], "api_key_env": KEY_ENV,
            "secret_env": SECRET_ENV}
    text = _problems(_tree_with(base | {"secret": SECRET}))
    at = [c["name"] for c in _tree_with(base)["tree"]["children"]].index("exchange")
    assert f"tree.children[{at}].settings.secret: unknown key" in text
    assert SECRET not in text
    text = _problems(_tree_with({k: v for k, v in base.items() if k != "secret_env"}))
    assert "needs exactly one of secret_env, secret_file" in text
    assert "ccxt has no exchange 'binancee'" in _problems(_tree_with(base | {"exchange":
                                                                              "binancee"}))


def test_config_error_when_ccxt_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)  # makes `import ccxt` fail
    text = _problems(_tree_with({"exchange": "binance", "symbols": [SYMBOL],
                                 "api_key_env": KEY_ENV, "secret_env": SECRET_ENV}))
    assert "the ccxt package is not installed" in text
    assert "pip install 'botvisor[live]'" in text


def test_credentials_from_files_under_the_credentials_directory(
    venue: FakeBinance, runtimes: list[Runtime], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "binance-key").write_text(KEY + "\n")
    (tmp_path / "binance-secret").write_text(SECRET + "\n")
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.delenv(SECRET_ENV)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    files = {"api_key_env": None, "secret_env": None,
             "api_key_file": "${CREDENTIALS_DIRECTORY}/binance-key",
             "secret_file": "$CREDENTIALS_DIRECTORY/binance-secret"}
    settings = CcxtExchange.Settings.model_validate(exchange_settings(venue, **files))
    creds = resolve_credentials(settings, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert KEY not in repr(creds) and SECRET not in repr(creds)
    assert KEY not in repr(settings) and SECRET not in repr(settings)

    rt = start_exchange(venue, runtimes, **files)
    assert place(rt, "bv-files-1").status == "filled"  # signed with the secret from the file
    assert venue.auth_failures == 0

    with pytest.raises(CredentialsError) as info:
        resolve_credentials(settings, {})
    assert str(info.value) == ("api key: file ${CREDENTIALS_DIRECTORY}/binance-key: "
                               "environment variable CREDENTIALS_DIRECTORY is not set")
    env_settings = CcxtExchange.Settings.model_validate(exchange_settings(venue))
    with pytest.raises(CredentialsError, match=f"secret: environment variable {SECRET_ENV} "
                                               "is not set"):
        resolve_credentials(env_settings, {KEY_ENV: KEY})


def test_the_documented_example_is_a_valid_config() -> None:
    # put into the shipped config as the doc says (tests/venues/test_price_guard_cli.py
    # checks it against the price guard)
    _, spec = parse_config(with_example(documented_example()), "docs/live-exchange.md")
    assert "exchange" in spec.all_ids()


def test_the_ccxt_exchange_answers_as_the_venue_contract_says(
    venue: FakeBinance, runtimes: list[Runtime]
) -> None:
    rt = start_exchange(venue, runtimes)
    assert_answers_as_a_venue(rt, "exchange",
                              PlaceOrder("bv-contract", SYMBOL, Side.BUY, Decimal("0.00345")))
