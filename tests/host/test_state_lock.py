"""One bot per state directory (issue 15, item 1).

A second ``botvisor run`` on the same config used to fail only to get the control socket
and then trade on the same ledger, sources and exchange record. Now the first run holds an
exclusive lock on ``state/botvisor.lock`` and a second one exits 1 at once, naming the
directory and the pid, before it opens any state file. A lock left by a run killed with
SIGKILL is released by the kernel, so it never keeps the next run out.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from supervisor.host.state_lock import StateLock, StateLocked
from tests.conftest import BotProcess
from tests.support.bot_helpers import count_rows, settings, shipped_config, wait_until, write_config


def test_second_lock_on_a_directory_names_the_holder(tmp_path: Path) -> None:
    lock = StateLock.acquire(tmp_path / "state")
    try:
        with pytest.raises(StateLocked) as caught:
            StateLock.acquire(tmp_path / "state")
        assert caught.value.pid == os.getpid()
        assert str(tmp_path / "state") in str(caught.value)
        assert f"pid {os.getpid()}" in str(caught.value)
    finally:
        lock.release()
    StateLock.acquire(tmp_path / "state").release()  # released: free again


def test_unwritable_place_for_the_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateLocked, match="cannot lock state directory"):
        StateLock.acquire(blocker / "state")


def test_second_run_on_one_state_directory_exits_before_touching_state(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    raw = shipped_config()
    settings(raw, "market")["speed"] = 6000
    config = write_config(raw, tmp_path / "config.yaml")
    venue_db = tmp_path / "state" / "paper_exchange.db"
    first = bot_process("run", "--config", str(config), cwd=tmp_path)
    try:
        first.wait_for_line(r"tree is up", timeout=40)
        wait_until(lambda: count_rows(venue_db, "fills") > 0, timeout=40,
                   what="the first run to trade")
        second = bot_process("run", "--config", str(config), "--duration", "3", cwd=tmp_path)
        assert second.wait(timeout=30) == 1
        text = "\n".join(second.lines)
        assert f"pid {first.proc.pid}" in text, text
        assert str(tmp_path / "state") in text, text
        assert "Traceback" not in text and "starting tree" not in text, text
    finally:
        first.signal(signal.SIGKILL)
        first.wait()
    # the kernel dropped the killed run's lock: the next run starts and stops cleanly
    third = bot_process("run", "--config", str(config), cwd=tmp_path)
    third.wait_for_line(r"tree is up", timeout=40)
    third.signal(signal.SIGTERM)
    assert third.wait(timeout=60) == 0, "\n".join(third.lines[-30:])
