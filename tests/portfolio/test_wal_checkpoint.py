"""WAL checkpoints run on the checkpointer's thread: the writer's own are turned down to a
safety net, and the pages its commits append reach the database file without it."""

from __future__ import annotations

import queue
import shutil
import sqlite3
from pathlib import Path

import pytest

from actors.common.wal_checkpoint import Checkpointer

WAIT = 10.0


class _Recording(Checkpointer):
    """A checkpointer that also hands each checkpoint's result to the test."""

    def __init__(self, path: Path, results: queue.Queue[tuple[int, int, int]]) -> None:
        super().__init__(path, synchronous="normal", interval=0.01, fallback_pages=5_000)
        self.results = results

    def checkpoint(self, db: sqlite3.Connection) -> tuple[int, int, int]:
        result = super().checkpoint(db)
        self.results.put(result)
        return result


def test_the_thread_moves_committed_pages_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA synchronous=NORMAL")
    writer.execute("CREATE TABLE t (n INTEGER)")
    results: queue.Queue[tuple[int, int, int]] = queue.Queue()
    checkpointer = _Recording(path, results)
    checkpointer.start(writer)
    try:
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 5_000
        for n in range(200):  # one commit each: 200 WAL frames or more
            writer.execute("INSERT INTO t VALUES (?)", (n,))
        while True:  # until a checkpoint has copied every frame there is
            busy, frames, copied = results.get(timeout=WAIT)
            if busy == 0 and frames >= 200 and copied == frames:
                break
        # The database file alone (no WAL beside it) now holds every row.
        alone = tmp_path / "alone.db"
        shutil.copyfile(path, alone)
        copy = sqlite3.connect(alone)
        assert copy.execute("SELECT count(*) FROM t").fetchone()[0] == 200
        copy.close()
    finally:
        assert checkpointer.stop(timeout=WAIT)
        writer.close()
    assert checkpointer.failures == 0


def test_the_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval"):
        Checkpointer(tmp_path / "w.db", synchronous="full", interval=0)
