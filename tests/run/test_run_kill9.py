"""``botvisor run`` killed with SIGKILL while it trades, again and again, loses no fill and
invents none: afterwards every venue fill is in the ledger exactly once, identical, and the
ledger holds no fill the venue lacks.

Each round starts ``botvisor run --config <copy>`` as a real subprocess in the test's
directory (so the shipped relative ``state/...`` paths land there), waits until the paper
exchange's SQLite file shows new fills, and kills the process at once with SIGKILL: right
after a fill, when a kill is most likely to fall between the venue's fill and the ledger's
record. A last run is stopped cleanly with SIGTERM (exit status 0). Before it, one more fill
is written into the exchange's file alone, exactly as a kill in that gap leaves it, so the
executor's venue sync on start is exercised whatever the kills' timing; the last run must
report recovering it. Then both SQLite files are read directly.

What the copy changes (everything else is as shipped): ``market.speed`` 600 -> 6000 (100
one-minute bars a second), so rounds are short; and the breaker's ``recovery_timeout``
120 s -> 1 s (``max_recovery_timeout`` 1800 -> 2): its state survives restarts by design, so
one trip in an early round would otherwise stop entries for every later round.
"""

from __future__ import annotations

import random
import signal
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

from tests.conftest import BotProcess
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    count_rows,
    ledger_fills,
    settings,
    shipped_config,
    venue_fills,
    wait_until,
    write_config,
)

ROUNDS = 4
SEED = 3
WAIT = 40.0  # a round's start plus a few fills, on a loaded machine


def _inject_gap_fill(venue_db: Path) -> str:
    """Write one more fill into the exchange's file alone: a small BTC/USDT buy at the last
    BTC price the venue traded, as if the process died right after the venue filled it."""
    last = [f for f in venue_fills(venue_db) if f.symbol == "BTC/USDT"]
    price = last[-1].price if last else Decimal("30000")
    at = max(f.at for f in venue_fills(venue_db)) + 60
    coid = "bv-killed-in-the-gap"
    qty = Decimal("0.001")
    fee = (qty * price / 1000).quantize(Decimal("0.00000001"))
    db = sqlite3.connect(venue_db)
    try:
        with db:
            db.execute("INSERT INTO fills VALUES (?, ?, 'BTC/USDT', 'buy', ?, ?, ?, ?)",
                       (f"{coid}-1", coid, str(qty), str(price), str(fee), at))
            # the venue's trigger has added the order row; this makes sure of it
            db.execute("INSERT OR IGNORE INTO orders VALUES (?, 'BTC/USDT', 'buy', ?, "
                       "'filled', '')", (coid, str(qty)))
    finally:
        db.close()
    return f"{coid}-1"


def test_sigkill_mid_trading_loses_no_fill_and_invents_none(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    raw = shipped_config()
    settings(raw, "market")["speed"] = 6000
    settings(raw, "breaker").update(recovery_timeout=1, max_recovery_timeout=2)
    config = write_config(raw, tmp_path / "config.yaml")
    venue_db = tmp_path / "state" / "paper_exchange.db"
    ledger_db = tmp_path / "state" / "ledger.db"
    rng = random.Random(SEED)
    per_round: list[tuple[int, int]] = []
    recovered_lines: list[str] = []

    for number in range(ROUNDS):
        before = count_rows(venue_db, "fills")
        target = before + rng.randint(2, 5)
        bot = bot_process("run", "--config", str(config), cwd=tmp_path)
        try:
            wait_until(lambda target=target: count_rows(venue_db, "fills") >= target,  # type: ignore[misc]
                       timeout=WAIT, what=f"round {number}: venue fills to reach {target}")
        except AssertionError:
            bot.kill()
            bot.wait()
            raise AssertionError("\n".join(bot.lines[-40:])) from None
        bot.signal(signal.SIGKILL)
        assert bot.wait() == -signal.SIGKILL
        recovered_lines += [line for line in bot.lines if "venue sync: recorded" in line]
        per_round.append((count_rows(venue_db, "fills"), count_rows(ledger_db, "fills")))
        venue_ids = {f.fill_id for f in venue_fills(venue_db)}
        invented = [f.fill_id for f in ledger_fills(ledger_db) if f.fill_id not in venue_ids]
        assert not invented, f"round {number}: ledger fills the venue never made: {invented}"

    gap_fill = _inject_gap_fill(venue_db)
    before = count_rows(venue_db, "fills")
    bot = bot_process("run", "--config", str(config), cwd=tmp_path)
    synced = bot.wait_for_line(r"venue sync: ", timeout=WAIT)
    bot.wait_for_line(r"tree is up", timeout=WAIT)
    wait_until(lambda: count_rows(venue_db, "fills") > before, timeout=WAIT,
               what="a fill in the last run")
    bot.signal(signal.SIGTERM)
    assert bot.wait(timeout=60) == 0, "\n".join(bot.lines[-40:])
    assert "recorded" in synced and gap_fill in synced, synced
    recovered_lines.append(synced)

    venue = venue_fills(venue_db)
    ledger = ledger_fills(ledger_db)
    assert_ledger_matches_venue(ledger, venue)
    assert Counter(f.side for f in venue)["sell"] > 0, "no exit traded in all the rounds"
    in_gap = sum(1 for venue_count, ledger_count in per_round if venue_count > ledger_count)
    print(f"\n{ROUNDS} kills; (venue, ledger) fills right after each: {per_round} "
          f"({in_gap} kill(s) fell between a fill and its record); {len(venue)} fills at the "
          f"end; venue syncs that recovered fills: {len(recovered_lines)}")
