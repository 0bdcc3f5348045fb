"""The issue's reproduction with real processes: ``botvisor run`` trades and is killed with
SIGKILL; a fill the venue made at an early venue time, which the ledger never got (as a
crash between fill and record leaves it, in a process whose market clock had started again),
is in the exchange's file alone; the next ``botvisor run`` must record it at its start-up
venue sync, although it lies far before the sync's look-back window (``venue_sync_lookback``
600 s here, so a short run is enough; the shipped value is a day). Before the fix the next
start logged ``the ledger has all N venue fill(s)`` and traded on without it.

What the copy changes: ``market.speed`` 6000 (100 bars a second) and no crash bar, the
breaker's recovery timeout 1 s, and the look-back. Everything else is as shipped.
"""

from __future__ import annotations

import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

from tests.conftest import BotProcess
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    bar_time,
    count_rows,
    ledger_fills,
    settings,
    shipped_config,
    venue_fills,
    wait_until,
    write_config,
)

WAIT = 40.0
LOOKBACK = 600.0


def _inject_early_fill(venue_db: Path) -> str:
    """One small BTC/USDT buy at the venue only, stamped at the market's second bar."""
    coid = "bv-lost-early"
    db = sqlite3.connect(venue_db)
    try:
        with db:
            db.execute("INSERT INTO fills VALUES (?, ?, 'BTC/USDT', 'buy', '0.001', '30000', "
                       "'0.03', ?)", (f"{coid}-1", coid, bar_time(1)))
    finally:
        db.close()
    return f"{coid}-1"


def test_a_fill_lost_to_a_crash_before_the_window_is_recorded_at_the_next_start(
        tmp_path: Path, bot_process: type[BotProcess]) -> None:
    raw = shipped_config()
    settings(raw, "market").update(speed=6000, crash_at_bar=None)
    settings(raw, "breaker").update(recovery_timeout=1, max_recovery_timeout=2)
    settings(raw, "executor")["venue_sync_lookback"] = LOOKBACK
    config = write_config(raw, tmp_path / "config.yaml")
    venue_db = tmp_path / "state" / "paper_exchange.db"
    ledger_db = tmp_path / "state" / "ledger.db"

    bot = bot_process("run", "--config", str(config), cwd=tmp_path)
    try:
        wait_until(lambda: count_rows(ledger_db, "fills") >= 2 and
                   max(f.at for f in ledger_fills(ledger_db)) > bar_time(1) + LOOKBACK,
                   timeout=WAIT, what="ledger fills past the look-back window")
    except AssertionError:
        bot.kill()
        bot.wait()
        raise AssertionError("\n".join(bot.lines[-40:])) from None
    bot.signal(signal.SIGKILL)
    assert bot.wait() == -signal.SIGKILL
    lost = _inject_early_fill(venue_db)

    bot = bot_process("run", "--config", str(config), cwd=tmp_path)
    synced = bot.wait_for_line(r"venue sync: ", timeout=WAIT)
    bot.wait_for_line(r"tree is up", timeout=WAIT)
    bot.signal(signal.SIGTERM)
    assert bot.wait(timeout=60) == 0, "\n".join(bot.lines[-40:])
    assert "recorded" in synced and lost in synced, synced
    ledger = ledger_fills(ledger_db)
    assert_ledger_matches_venue(ledger, venue_fills(venue_db))
    assert Decimal(next(f for f in ledger if f.fill_id == lost).price) == 30000
