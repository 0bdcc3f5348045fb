"""State that vanishes between two runs never reads as "all clear".

Each test builds the shipped tree in-process from a copy of ``config.yaml`` (state files in
the test's directory), runs it once so the ledger, the venue and the breaker have history,
stops it, deletes or damages one state file, and starts the tree again on the same
directory, as the next ``botvisor run`` would:

* ``breaker.db`` gone (or damaged) while the breaker was OPEN: it comes back OPEN, never
  CLOSED, not even for a moment (a tape actor records the breaker's gate at every market
  step), and a critical alert reaches the HTTP server; a brand-new directory starts CLOSED;
* ``ledger.db`` gone: the venue's fills are recorded again, a critical alert says the
  ledger was lost, and the breaker is HALTED (``botvisor breaker close`` resets it);
* ``paper_exchange.db`` gone: the start-up venue sync sees the ledger holds fills the
  venue never made, alerts (how many, which file) and halts.

Alerts go through the real alerts actor to ``json://127.0.0.1:PORT`` (an HTTP server this
test runs). What the copy changes: state files into the test's directory; the market
stops after a few steps and has no crash bar; a tape child records the breaker's gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.common.messages import Side
from actors.portfolio.contract import RecordFill
from actors.risk.contract import (
    BreakerState,
    BreakerStatus,
    ForceClose,
    ForceOpen,
    GetBreakerStatus,
)
from actors.venues.contract import OrderResult, PlaceOrder
from supervisor import Runtime
from tests.support.alert_server import AlertInbox
from tests.support.alert_server import alert_server as serve_alerts
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    executor_stats,
    ledger_fills,
    market_stats,
    redirect_state,
    settings,
    shipped_config,
    start_tree,
    venue_fills,
    wait_until,
    write_config,
)

WAIT = 20.0


# -- the HTTP side -----------------------------------------------------------------------------
@pytest.fixture
def alert_server() -> Iterator[tuple[int, AlertInbox]]:
    with serve_alerts() as served:
        yield served


def critical(title: str) -> Callable[[dict[str, Any]], bool]:
    """Match a critical alert whose title contains ``title``."""
    return lambda b: title in str(b.get("title")) and "CRITICAL" in str(b.get("title"))


# -- the tree ------------------------------------------------------------------------------------
def bot_config(tmp_path: Path, port: int, **executor: Any) -> Path:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "alerts")["channels"] = [
        {"name": "ops", "url": f"json://127.0.0.1:{port}/botvisor", "tags": ["ops"]}]
    m = settings(raw, "market")
    m.update(max_steps=3, crash_at_bar=None)
    m["subscribers"] = [*m.get("subscribers", ["scanner", "exits"]), "tape"]
    raw["tree"]["children"].insert(
        0, {"name": "tape", "actor": "tests.support.bot_helpers:MarketTape"})
    settings(raw, "executor").update(executor)
    return write_config(raw, tmp_path / "config.yaml")


def trade_once(rt: Runtime, coid: str, quantity: str = "0.001") -> None:
    """An order filled at the venue and its fill recorded in the ledger, as the executor
    does it (the market has finished its steps, so the venue has a price)."""
    wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the market's steps")
    result = rt.ask("exchange", PlaceOrder(coid, "BTC/USDT", Side.BUY, Decimal(quantity)))
    assert isinstance(result, OrderResult) and result.status == "filled", result
    rt.ask("positions", RecordFill(result.fills[0]))


def status(rt: Runtime) -> BreakerStatus:
    found = rt.ask("breaker", GetBreakerStatus())
    assert isinstance(found, BreakerStatus)
    return found


def synced(rt: Runtime) -> None:
    wait_until(lambda: executor_stats(rt).venue_synced, timeout=WAIT, what="the venue sync")


def delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def first_run(config: Path, *, open_breaker: bool = False) -> None:
    rt = start_tree(config)
    try:
        synced(rt)
        trade_once(rt, "bv-first-run")
        if open_breaker:
            assert rt.ask("breaker", ForceOpen("test", "drill")).state is BreakerState.OPEN
    finally:
        rt.stop()


def tape_states(rt: Runtime) -> set[str]:
    wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="the market's steps")
    return {entry.breaker for entry in rt.ask("tape", "tape")}


# -- breaker.db ----------------------------------------------------------------------------------
def test_a_new_deployment_starts_closed_without_a_critical_alert(
        tmp_path: Path, alert_server: tuple[int, AlertInbox]) -> None:
    port, inbox = alert_server
    rt = start_tree(bot_config(tmp_path, port))
    try:
        synced(rt)
        assert status(rt).state is BreakerState.CLOSED
        assert tape_states(rt) <= {"closed", "open"}  # open only until the ledger answered
        assert not any("CRITICAL" in t for t in inbox.titles()), inbox.titles()
    finally:
        rt.stop()


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_breaker_state_lost_while_open_comes_back_open_and_alerts(
        tmp_path: Path, alert_server: tuple[int, AlertInbox], damage: str) -> None:
    port, inbox = alert_server
    config = bot_config(tmp_path, port)
    first_run(config, open_breaker=True)
    breaker_db = tmp_path / "breaker.db"
    if damage == "delete":
        delete(breaker_db)
    else:
        delete(breaker_db)
        breaker_db.write_bytes(b"this is not a SQLite file\n" * 100)
    rt = start_tree(config)
    try:
        synced(rt)
        s = status(rt)
        assert s.state is BreakerState.OPEN and s.manual, s
        assert "lost" in s.reason and str(breaker_db) in s.reason, s.reason
        assert tape_states(rt) == {"open"}  # never CLOSED, not for one market step
        alert = inbox.wait_for("the lost breaker state", critical("Breaker state lost"))
        assert str(breaker_db) in str(alert.get("message"))
        # the operator's reset works as ever
        assert rt.ask("breaker", ForceClose("test", "checked")).state is BreakerState.CLOSED
    finally:
        rt.stop()
    if damage == "garble":
        assert list(tmp_path.glob("breaker.db.damaged-*")), "the damaged file was not kept"


# -- ledger.db -----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["delete", "empty"])
def test_a_lost_ledger_is_rebuilt_from_the_venue_alerted_and_halts(
        tmp_path: Path, alert_server: tuple[int, AlertInbox], damage: str) -> None:
    port, inbox = alert_server
    config = bot_config(tmp_path, port)
    first_run(config)
    delete(tmp_path / "ledger.db")
    if damage == "empty":
        (tmp_path / "ledger.db").write_bytes(b"")
    rt = start_tree(config)
    try:
        synced(rt)
        assert executor_stats(rt).recovered == 1
        s = wait_until(lambda: (st := status(rt)).state is BreakerState.HALTED and st,
                       timeout=WAIT, what="the breaker to halt")
        assert "had no fill" in s.reason and str(tmp_path / "ledger.db") in s.reason, s.reason
        alert = inbox.wait_for("the lost ledger", critical("State lost"))
        assert "ledger" in str(alert.get("message"))
        assert rt.ask("breaker", ForceClose("test", "checked")).state is BreakerState.CLOSED
    finally:
        rt.stop()
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"),
                                venue_fills(tmp_path / "paper_exchange.db"))


# -- paper_exchange.db ---------------------------------------------------------------------------
def test_a_lost_exchange_record_is_alerted_and_halts(
        tmp_path: Path, alert_server: tuple[int, AlertInbox]) -> None:
    port, inbox = alert_server
    config = bot_config(tmp_path, port)
    first_run(config)
    venue_db = tmp_path / "paper_exchange.db"
    delete(venue_db)
    rt = start_tree(config)
    try:
        synced(rt)
        s = wait_until(lambda: (st := status(rt)).state is BreakerState.HALTED and st,
                       timeout=WAIT, what="the breaker to halt")
        assert "lacks 1 fill(s)" in s.reason and str(venue_db) in s.reason, s.reason
        alert = inbox.wait_for("the lost exchange record", critical("State lost"))
        assert "lacks 1 fill(s)" in str(alert.get("message"))
        assert str(venue_db) in str(alert.get("message"))
    finally:
        rt.stop()
