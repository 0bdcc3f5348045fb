"""The offline state auditor (``actors.reliability.audit``) against the state files of a real run.

One ``botvisor run`` of the shipped tree (market sped up, as in test_run_kill9), stopped
with SIGTERM once it has made a dozen fills, leaves a state directory; each test copies
it, damages the copy the way a
fault would (a fill lost from the ledger, a fill the venue never made, a source edited or
truncated, the ledger gone, a breaker history with an order inside an OPEN stretch...)
and reads the auditor's report. The auditor must never touch what it reads.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actors.reliability.audit import AuditReport, audit_state
from tests.conftest import REPO, BotProcess
from tests.support.bot_helpers import (
    count_rows,
    settings,
    shipped_config,
    wait_until,
    write_config,
)

FILLS = 12  # the run's, before it is stopped: two buys and more for every test below


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a config and the state a real short run left in ``state/``."""
    directory = tmp_path_factory.mktemp("audited-run")
    raw = shipped_config()
    settings(raw, "market")["speed"] = 6000  # 100 bars a second: a few fills a second
    write_config(raw, directory / "config.yaml")
    bot = BotProcess("run", "--config", "config.yaml", cwd=directory)
    try:
        venue = directory / "state" / "paper_exchange.db"
        wait_until(lambda: count_rows(venue, "fills") >= FILLS, timeout=60,
                   what=f"{FILLS} fills at the venue")
        bot.signal(signal.SIGTERM)
        code = bot.wait(timeout=60)
    finally:
        bot.kill()
    assert code == 0, "\n".join(bot.lines[-30:])
    return directory


@pytest.fixture
def state(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the run's directory; returns it (config.yaml and state/ inside)."""
    shutil.copytree(run_dir, tmp_path / "run")
    return tmp_path / "run"


def audit(directory: Path) -> AuditReport:
    return audit_state(directory / "config.yaml", directory)


def sql(path: Path, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            for st in statements:
                if isinstance(st, tuple):
                    db.execute(*st)
                else:
                    db.execute(st)
    finally:
        db.close()


def one(path: Path, query: str) -> tuple[object, ...]:
    db = sqlite3.connect(path)
    try:
        row = db.execute(query).fetchone()
    finally:
        db.close()
    assert row is not None, query
    return tuple(row)


def digest(directory: Path) -> dict[str, tuple[str, float]]:
    return {str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                            p.stat().st_mtime)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_real_run_audits_clean_and_nothing_is_touched(run_dir: Path) -> None:
    before = digest(run_dir)
    report = audit(run_dir)
    assert report.clean, report
    assert report.fills_checked > 0 and report.orders_checked >= report.fills_checked
    assert report.sources_checked == 3
    assert digest(run_dir) == before, "the auditor changed the state it read"


def test_a_fill_lost_from_the_ledger_is_named(state: Path) -> None:
    ledger = state / "state" / "ledger.db"
    (fill_id,) = one(ledger, "SELECT fill_id FROM fills ORDER BY seq DESC LIMIT 1")
    sql(ledger, ("DELETE FROM fills WHERE fill_id = ?", (fill_id,)))
    report = audit(state)
    assert not report.clean
    assert any("ledger.db" in v and f"lacks exchange fill {fill_id}" in v
               for v in report.violations), report.violations


def test_a_fill_the_exchange_never_made_is_named(state: Path) -> None:
    venue = state / "state" / "paper_exchange.db"
    (fill_id,) = one(venue, "SELECT fill_id FROM fills ORDER BY rowid DESC LIMIT 1")
    sql(venue, ("DELETE FROM fills WHERE fill_id = ?", (fill_id,)))
    report = audit(state)
    assert any(f"fill {fill_id}" in v and "never made by the exchange" in v
               for v in report.violations), report.violations


def test_two_orders_with_one_client_order_id_are_found(state: Path) -> None:
    venue = state / "state" / "paper_exchange.db"
    (coid,) = one(venue, "SELECT client_order_id FROM orders LIMIT 1")
    # the record's primary key stops this; a store without one (or a second venue record
    # merged in) would not: rebuild the table without the key and add the duplicate
    sql(venue, "ALTER TABLE orders RENAME TO old_orders",
        "CREATE TABLE orders (client_order_id TEXT, symbol TEXT, side TEXT, quantity TEXT, "
        "status TEXT, reason TEXT)",
        "INSERT INTO orders SELECT * FROM old_orders",
        ("INSERT INTO orders SELECT * FROM old_orders WHERE client_order_id = ?", (coid,)))
    report = audit(state)
    assert any("paper_exchange.db" in v and f"client order id {coid} is used by 2" in v
               for v in report.violations), report.violations


def test_an_exposure_increasing_fill_inside_an_open_breaker_is_named(state: Path) -> None:
    ledger = state / "state" / "ledger.db"
    fill_id, recorded_at = one(ledger, "SELECT fill_id, recorded_at FROM fills "
                                       "WHERE side = 'buy' ORDER BY seq LIMIT 1")
    assert isinstance(recorded_at, float)
    opened = json.dumps({"from": "closed", "to": "open", "reason": "drawdown 12%",
                         "by": "breaker", "figures": []})
    closed = json.dumps({"from": "open", "to": "closed", "reason": "probe ok",
                         "by": "breaker", "figures": []})
    sql(state / "state" / "breaker.db", "DELETE FROM transitions",
        ("INSERT INTO transitions (at, record) VALUES (?, ?)", (recorded_at - 60, opened)),
        ("INSERT INTO transitions (at, record) VALUES (?, ?)", (recorded_at + 0.001, closed)))
    report = audit(state)
    assert any(f"fill {fill_id}" in v and "adds exposure" in v and "breaker was open" in v
               for v in report.violations), report.violations


def _transition(frm: str, to: str) -> str:
    return json.dumps({"from": frm, "to": to, "reason": f"{frm} -> {to}", "by": "breaker",
                       "figures": []})


def test_more_probes_than_half_open_allows_are_named(state: Path) -> None:
    ledger = state / "state" / "ledger.db"
    db = sqlite3.connect(ledger)
    buys = db.execute("SELECT fill_id, recorded_at FROM fills WHERE side = 'buy' "
                      "ORDER BY seq LIMIT 2").fetchall()
    db.close()
    (_, first), (second_id, second) = buys
    sql(state / "state" / "breaker.db", "DELETE FROM transitions",
        ("INSERT INTO transitions (at, record) VALUES (?, ?)", (first - 60,
                                                                 _transition("closed", "open"))),
        ("INSERT INTO transitions (at, record) VALUES (?, ?)", (first - 0.5, _transition(
            "open", "half_open"))),
        ("INSERT INTO transitions (at, record) VALUES (?, ?)", (second + 0.001, _transition(
            "half_open", "closed"))))
    report = audit(state)  # the shipped half_open_max_calls is 1
    assert any(f"fill {second_id}" in v and "probe 2 of a HALF_OPEN breaker that allows 1" in v
               for v in report.violations), report.violations


def test_fills_older_than_a_recreated_breakers_history_are_not_judged_by_it(
        state: Path) -> None:
    """A breaker whose file was lost starts afresh (held OPEN) with no history: its first
    transition's "from" says nothing of the fills made before the file was."""
    ledger = state / "state" / "ledger.db"
    (last,) = one(ledger, "SELECT MAX(recorded_at) FROM fills")
    assert isinstance(last, float)
    sql(state / "state" / "breaker.db", "DELETE FROM transitions",
        ("INSERT INTO transitions (at, record) VALUES (?, ?)",
         (last + 10, _transition("open", "half_open"))))
    report = audit(state)
    assert not [v for v in report.violations if "adds exposure" in v], report.violations


def test_a_halted_breaker_is_reported_as_refusing_to_trade(state: Path) -> None:
    breaker = state / "state" / "breaker.db"
    (record,) = one(breaker, "SELECT record FROM state WHERE id = 1")
    data = json.loads(str(record))
    data.update(state="halted", reason="emergency reset of the ledger's sources", by="positions")
    sql(breaker, ("UPDATE state SET record = ? WHERE id = 1", (json.dumps(data),)))
    report = audit(state)
    assert report.refused_to_trade is not None
    assert "halted" in report.refused_to_trade and "emergency reset" in report.refused_to_trade


def test_a_source_that_disagrees_is_named_with_the_conflict(state: Path) -> None:
    wallet = state / "state" / "paper_wallet.yaml"
    data = yaml.safe_load(wallet.read_text())
    data["balance"]["USDT"] = "123.45"
    wallet.write_text(yaml.safe_dump(data))
    report = audit(state)
    assert any("paper_wallet.yaml" in v and "balance" in v and "source=123.45" in v
               for v in report.violations), report.violations


def test_a_truncated_source_is_damaged_not_clean(state: Path) -> None:
    manager = state / "state" / "trade_manager.json"
    manager.write_bytes(manager.read_bytes()[:40])
    report = audit(state)
    assert any("trade_manager.json" in v and "damaged" in v for v in report.violations), \
        report.violations


def test_a_source_behind_the_ledger_is_lagging_not_wrong(state: Path) -> None:
    log = state / "state" / "positions.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-3]))  # as if the last three appends had not happened
    report = audit(state)
    assert report.clean, report.violations
    assert any("positions.log" in n and "lags the ledger" in n for n in report.notes)


def test_a_missing_ledger_is_never_clean(state: Path) -> None:
    for f in (state / "state").glob("ledger.db*"):
        f.unlink()
    report = audit(state)
    assert not report.clean
    assert any("ledger.db" in m for m in report.missing)
    assert any("no usable ledger while the exchange has" in v for v in report.violations)


def test_a_garbled_ledger_is_damaged(state: Path) -> None:
    for f in (state / "state").glob("ledger.db-*"):
        f.unlink()
    (state / "state" / "ledger.db").write_bytes(b"not a database " * 400)
    report = audit(state)
    assert any("ledger.db" in v and "damaged" in v for v in report.violations)


def test_negative_cash_is_an_impossible_book(state: Path) -> None:
    ledger = state / "state" / "ledger.db"
    (seq,) = one(ledger, "SELECT MAX(seq) FROM fills")
    assert isinstance(seq, int)
    sql(ledger, ("INSERT INTO adjustments VALUES (?, 0, NULL, 'cash', '0', '-5', 'test')",
                 (seq + 1,)),
        "UPDATE account SET value = '-5' WHERE key = 'cash'")
    report = audit(state)
    assert any("negative cash -5" in v for v in report.violations), report.violations


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actors.reliability.audit", *args], check=False,
                          cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_the_command_exits_0_clean_1_violations_2_bad_input(state: Path) -> None:
    clean = _cli("--config", "config.yaml", "--json", cwd=state)
    assert clean.returncode == 0, clean.stderr
    figures = json.loads(clean.stdout)
    assert figures["clean"] is True and figures["fills_checked"] > 0
    (state / "state" / "paper_wallet.yaml").write_text("balance: [unclosed\n")
    dirty = _cli("--config", "config.yaml", cwd=state)
    assert dirty.returncode == 1 and "paper_wallet.yaml" in dirty.stdout
    bad = _cli("--config", "nope.yaml", cwd=state)
    assert bad.returncode == 2
    assert "nope.yaml" in bad.stderr and "Traceback" not in bad.stderr


def test_a_live_bot_is_noted_and_its_lock_never_taken(state: Path) -> None:
    """The lock file names a running process (here this test's own, as a live bot's
    would): the report says the state was read from a live bot."""
    import fcntl
    import os

    lock = state / "state" / "botvisor.lock"
    lock.write_text(f"{os.getpid()}\n")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held as a bot holds it
        report = audit(state)
    finally:
        os.close(fd)
    assert report.clean
    assert any(f"names pid {os.getpid()}, which is running" in n for n in report.notes)
