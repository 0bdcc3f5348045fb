"""The price guard through the real ``botvisor`` command, on the documented example.

docs/live-exchange.md's example (the ccxt exchange and a live feed of the same venue) is
put into the shipped config.yaml as the doc says (:mod:`tests.venues.live_config`): it
passes the guard. Left with the shipped synthetic market, ``botvisor run`` and
``check-config`` exit 2 before anything starts, naming both children, with the very line the
doc shows and no traceback. With ``allow_unmatched_prices: true`` and the exchange pointed
at the local fake Binance, a real run starts and logs the warning at WARNING.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

from actors.venues.ccxt_exchange import CcxtExchange
from supervisor.host.config import parse_config
from supervisor.host.wiring import Configured, check_wiring, wiring_warnings
from tests.conftest import BotProcess
from tests.support.bot_helpers import wait_until
from tests.support.fake_venues import KEY, KEY_ENV, SECRET, SECRET_ENV, SYMBOL, FakeBinance
from tests.venues.live_config import DOC, child, documented_example, shipped, with_example, write

EXCHANGE, MARKET = "tree > exchange", "tree > pipeline > market"


def on_synthetic_market() -> dict[str, Any]:
    """The doc's example with the shipped synthetic market left in place."""
    raw = with_example()
    child(raw, "pipeline")["children"][0] = child(shipped(), "pipeline", "market")
    assert child(raw, "pipeline", "market")["settings"]["source"] == "synthetic"
    return raw


def doc_line(after: str) -> str:
    """The line of docs/live-exchange.md's guard section that starts with ``after``."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"^\s*({re.escape(after)}.*)$", text, re.M)
    assert found is not None, f"docs/live-exchange.md shows no line starting {after!r}"
    return found.group(1)


def test_the_documented_example_passes_the_guard(bot_process: type[BotProcess],
                                                 tmp_path: Path) -> None:
    example = documented_example()
    _, spec = parse_config(with_example(example), "docs/live-exchange.md")
    assert check_wiring(spec) == [] and wiring_warnings(spec) == []
    exchange = next(c for c in spec.children if c.id == "exchange").factory
    assert isinstance(exchange, Configured) and exchange.actor is CcxtExchange
    assert exchange.settings.market == "market" and not exchange.settings.allow_unmatched_prices
    # the real command agrees
    bot = bot_process("check-config", str(write(with_example(example), tmp_path / "c.yaml")),
                      cwd=tmp_path)
    assert bot.wait() == 0, "\n".join(bot.lines)
    assert "ok" in bot.stdout()


def test_run_refuses_the_example_on_a_synthetic_market(bot_process: type[BotProcess],
                                                       tmp_path: Path) -> None:
    path = write(on_synthetic_market(), tmp_path / "config.yaml")
    bot = bot_process("run", "--config", str(path), "--duration", "5", cwd=tmp_path)
    assert bot.wait() == 2
    text = "\n".join(bot.lines)
    assert "Traceback" not in text
    guard = [line for line in bot.lines if "must be priced by its own live feed" in line]
    assert len(guard) == 1, text  # one line per problem (the market has no fallback)
    assert guard[0].strip().startswith(f"{EXCHANGE} > settings.market: ")
    assert f"but {MARKET} is source 'synthetic', not a live feed of binance" in guard[0]
    assert "allow_unmatched_prices: true" in guard[0]
    assert guard[0].strip() == doc_line(f"{EXCHANGE} > settings.market:")  # as the doc shows
    assert "starting tree" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # nothing started

    check = bot_process("check-config", str(path), cwd=tmp_path)
    assert check.wait() == 2
    assert guard[0] in check.lines and "Traceback" not in "\n".join(check.lines)


def test_check_config_prints_the_overrides_warning_as_the_doc_shows(
        bot_process: type[BotProcess], tmp_path: Path) -> None:
    raw = on_synthetic_market()
    child(raw, "exchange")["settings"]["allow_unmatched_prices"] = True
    bot = bot_process("check-config", str(write(raw, tmp_path / "config.yaml")), cwd=tmp_path)
    assert bot.wait() == 0, "\n".join(bot.lines)
    shown = doc_line("WARNING botvisor: wiring: ").removeprefix("WARNING botvisor: wiring: ")
    assert f"  warning: {shown}" in bot.stdout().splitlines()


def test_the_override_starts_and_logs_a_loud_warning(bot_process: type[BotProcess],
                                                     tmp_path: Path) -> None:
    venue = FakeBinance()
    try:
        raw = on_synthetic_market()
        settings = child(raw, "exchange")["settings"]
        api = venue.url + "/api/v3"
        settings.update({
            "sandbox": False, "symbols": [SYMBOL], "allow_unmatched_prices": True,
            "api_key_file": None, "secret_file": None,
            "api_key_env": KEY_ENV, "secret_env": SECRET_ENV,
            "urls": {"api": {"public": api, "private": api}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                        "fetchMargins": False, "defaultType": "spot"},
            "timeout_ms": 500, "rate_limit": False})
        path = write(raw, tmp_path / "config.yaml")
        bot = bot_process("run", "--config", str(path), cwd=tmp_path,
                          env={KEY_ENV: KEY, SECRET_ENV: SECRET})
        warning = bot.wait_for_line(r"WARNING .*wiring: ", timeout=30)
        bot.wait_for_line(r"tree is up", timeout=30)
        wait_until(lambda: venue.count("GET /api/v3/exchangeInfo") >= 1, timeout=30,
                   what="the exchange to reach the venue")
        bot.signal(signal.SIGTERM)  # it started: stopped as soon as that is seen
        assert bot.wait(timeout=60) == 0, "\n".join(bot.lines)
    finally:
        venue.close()
    assert (f"wiring: {EXCHANGE} > settings.allow_unmatched_prices: the price guard is OFF: "
            "orders on binance will be priced by a market that is not the venue's "
            f"({MARKET} is source 'synthetic', not a live feed of binance)") in warning
    text = "\n".join(bot.lines)
    assert "Traceback" not in text and KEY not in text and SECRET not in text
    assert venue.count("GET /api/v3/exchangeInfo") >= 1  # the exchange did reach the venue
