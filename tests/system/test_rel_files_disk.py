"""A full or read-only state directory is a logged, alerted failure, never a silent death
(issue 15, item 5).

Real filesystems, not chmod (these tests run as root, for whom a mode bit is no barrier):

* a tiny tmpfs (``mount -t tmpfs -o size=...``) gives a real ENOSPC once the test fills it;
* a loop-mounted ext4 image with ``errors=remount-ro`` turns read-only under a running
  process when the test triggers a filesystem error through
  ``/sys/fs/ext4/<dev>/trigger_fs_error`` (a live tmpfs cannot be remounted read-only
  while files on it are open for writing: the kernel answers EBUSY).

Tests that cannot mount skip with the reason; every mount is undone in teardown.

The process tests run ``botvisor run`` as a subprocess on a copy of ``config.yaml`` whose
state files all live in the mount (see tests/run/test_run_kill9.py); the copy lets trading go
on (the breaker's consecutive-loss limit is raised) so that writes keep coming.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.alerts.alerts import AlertsActor
from actors.alerts.contract import AlertStats, GetAlertStats
from actors.common.messages import Alert
from actors.common.storage import (
    DatabaseDamaged,
    DatabaseIOError,
    StorageFailure,
    atomic_write,
    open_database,
)
from supervisor import ChildSpec, Runtime, SupervisorSpec
from supervisor.clock import ManualClock
from supervisor.error_handler import Directive, ErrorHandler, Severity
from tests.conftest import BotProcess
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    count_rows,
    ledger_fills,
    node,
    redirect_state,
    settings,
    shipped_config,
    venue_fills,
    wait_until,
    write_config,
)

WAIT = 40.0  # a start and a few fills, on a loaded machine


# -- mounts ------------------------------------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


class Mounts:
    """Mounts made by one test, undone (lazily, so a busy one still goes) at teardown."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.mounted: list[Path] = []

    def _need(self, *tools: str) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting a filesystem needs root")
        for tool in tools:
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed")

    def tmpfs(self, directory: Path, size: str) -> Path:
        self._need("mount", "umount")
        directory.mkdir(parents=True, exist_ok=True)
        done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        self.mounted.append(directory)
        return directory

    def ext4(self, directory: Path, size_mb: int = 16) -> str:
        """An ext4 image mounted on ``directory`` with errors=remount-ro; its device name."""
        self._need("mount", "umount", "mkfs.ext4")
        image = self.scratch / "state.ext4"
        with open(image, "wb") as handle:
            handle.truncate(size_mb * 1024 * 1024)
        made = _run("mkfs.ext4", "-q", "-F", str(image))
        if made.returncode != 0:
            pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
        directory.mkdir(parents=True, exist_ok=True)
        done = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(directory))
        if done.returncode != 0:
            pytest.skip(f"cannot loop-mount an ext4 image here: {done.stderr.strip()}")
        self.mounted.append(directory)
        source = _run("findmnt", "-n", "-o", "SOURCE", str(directory)).stdout.strip()
        device = Path(source).name
        if not Path(f"/sys/fs/ext4/{device}/trigger_fs_error").exists():
            pytest.skip("this kernel's ext4 has no trigger_fs_error")
        return device

    def undo(self) -> None:
        for directory in reversed(self.mounted):
            _run("umount", "-l", str(directory))
        self.mounted.clear()


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    made = Mounts(tmp_path)
    try:
        yield made
    finally:
        made.undo()


def _fill_up(directory: Path) -> Path:
    """Write a file into ``directory`` until its filesystem is full (ENOSPC)."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _trading_config(tmp_path: Path, state: Path, *, short_backoff: bool = False) -> Path:
    """The shipped config with every state file in ``state``, trading on through losses;
    ``short_backoff``: restarts at most 0.2 s apart, so restarts that cannot help run out
    (and the process gives up) within the test's wait rather than after minutes."""
    raw = shipped_config()
    if short_backoff:
        for name in ("ledger", "pipeline"):
            node(raw, name)["backoff"]["maximum"] = 0.2
        raw["tree"]["backoff"]["maximum"] = 0.2
    redirect_state(raw, state)
    settings(raw, "market")["speed"] = 6000  # 100 bars a second: fills come quickly
    settings(raw, "breaker")["consecutive_losses"] = {"max_losses": 10_000}
    return write_config(raw, tmp_path / "config.yaml")


def _finish(bot: BotProcess, timeout: float = 60.0) -> int:
    """Stop the run (if it has not ended by itself) and return its exit status."""
    if bot.proc.poll() is None:
        bot.signal(signal.SIGTERM)
    code = bot.wait(timeout=timeout)
    assert code != -signal.SIGBUS, "killed by SIGBUS:\n" + "\n".join(bot.lines[-40:])
    assert code >= 0, f"killed by signal {-code}:\n" + "\n".join(bot.lines[-40:])
    return code


def _assert_ended_with_word(bot: BotProcess, code: int) -> None:
    text = "\n".join(bot.lines)
    print(f"\nexit status {code}; last lines:", *bot.lines[-3:], sep="\n")
    assert "botvisor stopping" in text, "no shutdown alert in the log:\n" + text[-4000:]
    if code == 0:
        assert "stopped cleanly" in text
    else:
        assert re.search(rf"exiting with status {code}: .+", text), text[-4000:]


# -- the process -------------------------------------------------------------------------------
def test_a_state_directory_that_fills_up_is_logged_naming_the_file_and_loses_nothing(
    tmp_path: Path, mounts: Mounts, bot_process: type[BotProcess]
) -> None:
    state = mounts.tmpfs(tmp_path / "state", "4m")
    config = _trading_config(tmp_path, state)
    venue_db, ledger_db = state / "paper_exchange.db", state / "ledger.db"
    bot = bot_process("run", "--config", str(config), cwd=tmp_path)
    try:
        bot.wait_for_line(r"tree is up", timeout=WAIT)
        wait_until(lambda: count_rows(ledger_db, "fills") >= 2, timeout=WAIT,
                   what="fills in the ledger before the disk fills")
        filler = _fill_up(state)
        full = bot.wait_for_line(
            rf"(database or disk is full|No space left on device).*{re.escape(str(state))}/",
            timeout=WAIT)
    finally:
        code = _finish(bot)
    assert "Errno 28" in full, full
    _assert_ended_with_word(bot, code)

    # Nothing acknowledged is lost, nothing invented: with room again, one more run's venue
    # sync brings the ledger level with every fill the venue made.
    filler.unlink()
    assert {f.fill_id for f in ledger_fills(ledger_db)} <= {
        f.fill_id for f in venue_fills(venue_db)}
    again = bot_process("run", "--config", str(config), "--duration", "2", cwd=tmp_path)
    again.wait_for_line(r"venue sync: ", timeout=WAIT)
    assert _finish(again) == 0, "\n".join(again.lines[-40:])
    assert_ledger_matches_venue(ledger_fills(ledger_db), venue_fills(venue_db))


def test_a_state_directory_turned_read_only_while_running_is_a_logged_failure(
    tmp_path: Path, mounts: Mounts, bot_process: type[BotProcess]
) -> None:
    state = tmp_path / "state"
    device = mounts.ext4(state)
    config = _trading_config(tmp_path, state, short_backoff=True)
    bot = bot_process("run", "--config", str(config), cwd=tmp_path)
    try:
        bot.wait_for_line(r"tree is up", timeout=WAIT)
        wait_until(lambda: count_rows(state / "ledger.db", "fills") >= 2, timeout=WAIT,
                   what="fills in the ledger before the disk turns read-only")
        Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("1\n")
        failed = bot.wait_for_line(
            rf"(Errno 5|Errno 30).*{re.escape(str(state))}/", timeout=WAIT)
        # nothing can be recorded any more: the restarts (with backoff) run out and the
        # process ends non-zero, saying why, with its shutdown alert
        bot.wait_for_line(r"exiting with status 1: ", timeout=WAIT)
        bot.proc.wait(timeout=WAIT)
    finally:
        code = _finish(bot)
    assert code == 1
    assert re.search(r"disk I/O error|Input/output error|read-?only", failed, re.I), failed
    _assert_ended_with_word(bot, code)


# -- the pieces --------------------------------------------------------------------------------
def test_storage_failures_name_the_file_and_are_classified_critical(
    tmp_path: Path, mounts: Mounts
) -> None:
    state = mounts.tmpfs(tmp_path / "state", "256k")
    handler = ErrorHandler()
    db = open_database(state / "t.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x BLOB)")
    _fill_up(state)
    with pytest.raises(DatabaseIOError) as raised:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", (b"x" * 65536,))
    db.close()
    exc = raised.value
    assert exc.errno == errno.ENOSPC and exc.filename == str(state / "t.db")
    assert isinstance(exc, sqlite3.OperationalError)  # existing handlers still catch it
    decision = handler.classify(exc)
    assert decision.severity is Severity.CRITICAL and decision.directive is Directive.RESTART

    with pytest.raises(DatabaseIOError) as refused:  # no room: not even opened
        open_database(state / "other.db")
    assert refused.value.errno == errno.ENOSPC and "other.db" in str(refused.value)
    with pytest.raises(StorageFailure) as written:
        atomic_write(state / "wallet.yaml", b"x" * 65536)
    assert written.value.errno == errno.ENOSPC
    assert written.value.filename == str(state / "wallet.yaml")
    assert handler.classify(written.value).severity is Severity.CRITICAL


def test_a_damaged_database_file_is_named_and_classified_critical(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not a database, it was overwritten " * 200)
    db = open_database(path)
    with pytest.raises(DatabaseDamaged) as raised:
        db.execute("PRAGMA journal_mode=WAL")
    db.close()
    assert raised.value.filename == str(path)
    assert isinstance(raised.value, sqlite3.DatabaseError)
    assert ErrorHandler().classify(raised.value).severity is Severity.CRITICAL


def test_alerts_with_a_full_disk_are_held_logged_and_written_later(
    tmp_path: Path, mounts: Mounts, caplog: pytest.LogCaptureFixture
) -> None:
    state = mounts.tmpfs(tmp_path / "state", "64k")
    filler = _fill_up(state)
    fallback = state / "alerts-fallback.jsonl"
    alerts = AlertsActor.Settings(
        # a real channel that fails: nothing listens on port 9 of the loopback
        channels=({"name": "ops", "url": "json://127.0.0.1:9/", "tags": ["ops"]},),  # type: ignore[arg-type]
        fallback_file=str(fallback), fallback_retry_seconds=30, timeout_seconds=5,
        shutdown_severity=None,
    )
    clock = ManualClock()
    rt = Runtime(clock=clock, ask_timeout=10)
    rt.start(SupervisorSpec(children=(ChildSpec("alerts", factory=lambda: AlertsActor(alerts)),)))
    caplog.set_level(logging.INFO)
    try:
        rt.tell("alerts", Alert("disk.test", "error", "Ledger write failed", "state is full"))
        stats = rt.ask("alerts", GetAlertStats())
        assert isinstance(stats, AlertStats)
        assert stats.failed == 1 and stats.fallback_written == 0
        assert stats.fallback_pending == 1 and stats.fallback_errors >= 1
        logged = [r for r in caplog.records if r.name == "botvisor.alerts"
                  and "Ledger write failed" in r.getMessage()]
        assert logged and logged[0].levelno == logging.ERROR
        assert not fallback.exists() or b"Ledger write failed" not in fallback.read_bytes()

        clock.advance(30)  # still full: the retry fails and is scheduled again
        stats = rt.ask("alerts", GetAlertStats())
        assert stats.fallback_pending == 1 and stats.fallback_errors >= 2

        filler.unlink()  # room again: the next retry writes what was held
        clock.advance(30)
        stats = rt.ask("alerts", GetAlertStats())
        assert stats.fallback_pending == 0 and stats.fallback_written == 1
        assert stats.fallback_dropped == 0
    finally:
        rt.stop()
    assert b"Ledger write failed" in fallback.read_bytes()


def test_alerts_held_in_memory_are_bounded_and_counted(
    tmp_path: Path, mounts: Mounts
) -> None:
    state = mounts.tmpfs(tmp_path / "state", "64k")
    _fill_up(state)
    alerts = AlertsActor.Settings(
        fallback_file=str(state / "alerts-fallback.jsonl"), fallback_memory=3,
        routes={"error": ["ops"]},  # type: ignore[arg-type]  # no channel has it: fallback
        cooldown_seconds=0, burst=None, shutdown_severity=None,
    )
    rt = Runtime(clock=ManualClock(), ask_timeout=10)
    rt.start(SupervisorSpec(children=(ChildSpec("alerts", factory=lambda: AlertsActor(alerts)),)))
    try:
        for n in range(5):
            rt.tell("alerts", Alert(f"disk.{n}", "error", f"alert {n}"))
        stats = rt.ask("alerts", GetAlertStats())
        assert stats.fallback_pending == 3 and stats.fallback_dropped == 2
    finally:
        rt.stop()


def test_a_fatal_signal_in_a_run_still_leaves_its_cause_on_stderr(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """Should a memory-mapped file ever raise SIGBUS again (a kernel and filesystem this
    machine does not reproduce it on), the journal gets the signal and every thread's
    stack, not silence. The signal is sent from outside: the same handler runs."""
    config = _trading_config(tmp_path, tmp_path / "state")
    bot = bot_process("run", "--config", str(config), cwd=tmp_path)
    try:
        bot.wait_for_line(r"tree is up", timeout=WAIT)
        bot.signal(signal.SIGBUS)
        code = bot.wait(timeout=WAIT)
    finally:
        if bot.proc.poll() is None:
            bot.kill()
    text = "\n".join(bot.lines)
    assert "Fatal Python error: Bus error" in text, (code, text[-3000:])
    assert 'File "' in text  # the stacks of the threads
    # faulthandler reads the other threads' stacks without their locks (Python documents
    # it as unsafe): once in many runs that read itself crashes, after the cause is out
    assert code in (-signal.SIGBUS, -signal.SIGSEGV), code


def test_an_alert_cut_short_by_a_full_disk_is_written_whole_later(
    tmp_path: Path, mounts: Mounts
) -> None:
    """The disk fills half-way through a fallback line: the line stays held, and once
    there is room it is written whole on a line of its own (the cut fragment cannot run
    into it)."""
    state = mounts.tmpfs(tmp_path / "state", "64k")
    fallback = state / "alerts-fallback.jsonl"
    fallback.write_bytes(b"#" * 4000 + b"\n")  # most of one page: the next line crosses it
    filler = _fill_up(state)
    alerts = AlertsActor.Settings(
        fallback_file=str(fallback), routes={"error": ["ops"]},  # type: ignore[arg-type]
        fallback_retry_seconds=30, shutdown_severity=None,
    )
    clock = ManualClock()
    rt = Runtime(clock=clock, ask_timeout=10)
    rt.start(SupervisorSpec(children=(ChildSpec("alerts", factory=lambda: AlertsActor(alerts)),)))
    try:
        rt.tell("alerts", Alert("disk.cut", "error", "Cut short", "x" * 400))
        assert rt.ask("alerts", GetAlertStats()).fallback_pending == 1
        assert len(fallback.read_bytes()) > 4001  # part of the line did go in
        filler.unlink()
        clock.advance(30)
        stats = rt.ask("alerts", GetAlertStats())
        assert stats.fallback_pending == 0 and stats.fallback_written == 1
    finally:
        rt.stop()
    lines = fallback.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1])["title"] == "Cut short"
    assert lines[-2].startswith('{"at"')  # the fragment, on its own line
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[-2])
