"""StatementWriter: statements committed in order on the writer's thread, each callback
after its commit; a failed statement is reported and leaves nothing; a stop commits what
was queued. A real SQLite file, read back from another connection."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.common.sqlite_writer import StatementWriter, WriterStopped

INSERT = "INSERT INTO t VALUES (?, ?)"


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    db.close()
    return path


def _rows(path: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT k, v FROM t ORDER BY rowid").fetchall()
    finally:
        db.close()


def test_statements_commit_in_order_and_each_callback_comes_after_its_commit(
    tmp_path: Path,
) -> None:
    path = _db(tmp_path)
    writer = StatementWriter(path, pragmas=("PRAGMA synchronous=NORMAL",), name="t").start()
    seen: list[tuple[int, BaseException | None, list[tuple[int, str]], str]] = []
    try:
        for k in range(20):
            writer.submit(INSERT, (k, f"v{k}"), lambda err, _db, k=k: seen.append(
                (k, err, _rows(path), threading.current_thread().name)))
        assert writer.flush()
    finally:
        assert writer.stop()
    assert [k for k, *_ in seen] == list(range(20))
    for k, err, rows, thread in seen:
        assert err is None and rows[-1] == (k, f"v{k}")  # committed: another connection sees it
        assert thread == "botvisor:writer:t"
    assert writer.written == 20 and writer.failed == 0


def test_a_failed_statement_is_reported_and_the_next_ones_go_on(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = StatementWriter(path).start()
    errors: list[BaseException | None] = []
    try:
        writer.submit(INSERT, (1, "a"), lambda err, _db: errors.append(err))
        writer.submit(INSERT, (1, "again"), lambda err, _db: errors.append(err))
        writer.submit(INSERT, (2, "b"), lambda err, _db: 1 / 0)  # a callback that raises
        writer.submit(INSERT, (3, "c"), lambda err, _db: errors.append(err))
        assert writer.flush()
    finally:
        writer.stop()
    assert errors[0] is None and isinstance(errors[1], sqlite3.IntegrityError)
    assert errors[2] is None
    assert _rows(path) == [(1, "a"), (2, "b"), (3, "c")]
    assert writer.failed == 1


def test_stop_commits_what_is_queued_and_refuses_more(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = StatementWriter(path).start()
    for k in range(200):
        writer.submit(INSERT, (k, "x"), lambda err, _db: None)
    assert writer.stop()
    assert len(_rows(path)) == 200
    with pytest.raises(RuntimeError, match="stopped"):
        writer.submit(INSERT, (999, "late"), lambda err, _db: None)


def test_a_database_that_cannot_be_opened_fails_start(tmp_path: Path) -> None:
    writer = StatementWriter(tmp_path / "missing" / "w.db")
    with pytest.raises(sqlite3.OperationalError):
        writer.start()


def test_a_read_sees_every_write_handed_over_before_it(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = StatementWriter(path).start()
    counts: list[tuple[object, BaseException | None]] = []
    try:
        for k in range(30):
            writer.submit(INSERT, (k, "x"), lambda err, _db: None)
        writer.query(lambda db: db.execute("SELECT COUNT(*) FROM t").fetchone()[0],
                     lambda result, err: counts.append((result, err)))
        writer.query(lambda db: db.execute("SELECT nope FROM t").fetchall(),
                     lambda result, err: counts.append((result, err)))
        assert writer.flush()
    finally:
        writer.stop()
    assert counts[0] == (30, None)
    assert counts[1][0] is None and isinstance(counts[1][1], sqlite3.OperationalError)


def test_a_stop_that_times_out_fails_what_is_left_instead_of_running_it(
    tmp_path: Path,
) -> None:
    """The test holds the write lock: the first write waits for it. A stop times out; once
    the lock goes the first write (already under way) commits, the second fails unrun, so
    a replacement never sees this writer commit behind it."""
    path = _db(tmp_path)
    writer = StatementWriter(path).start()
    blocker = sqlite3.connect(path, isolation_level=None)
    outcomes: dict[int, BaseException | None] = {}
    second = threading.Event()

    def note(k: int) -> Callable[[BaseException | None, sqlite3.Connection], None]:
        def done(err: BaseException | None, _db: sqlite3.Connection) -> None:
            outcomes[k] = err
            if k == 2:
                second.set()
        return done

    try:
        blocker.execute("BEGIN IMMEDIATE")
        writer.submit(INSERT, (1, "under way"), note(1))
        writer.submit(INSERT, (2, "queued"), note(2))
        assert writer.stop(timeout=0.2) is False
        blocker.execute("ROLLBACK")
        assert second.wait(10.0)
    finally:
        blocker.close()
    assert outcomes[1] is None and isinstance(outcomes[2], WriterStopped)
    assert _rows(path) == [(1, "under way")]
