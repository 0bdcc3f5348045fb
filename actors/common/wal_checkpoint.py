"""WAL checkpoints off the writer's thread.

In WAL mode SQLite appends each commit to the ``-wal`` file, and a *checkpoint* now and
then copies those pages into the database file. By default the connection whose commit
crosses 1,000 pages runs the checkpoint inside that commit, and with ``synchronous``
NORMAL or FULL the checkpoint fsyncs both files: measured here, a paper-exchange order
that usually commits in 0.1 ms took 10 to 20 ms once every couple of hundred orders, and
the actor (with its thread-mates) stood still meanwhile.

A :class:`Checkpointer` takes that work off the writer: it turns the writer's own
checkpoints down to a safety net (``fallback_pages``, far above what the thread lets
build up) and runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval`` seconds from its
own thread and connection. A passive checkpoint never waits for the writer nor blocks it,
and SQLite releases the GIL while it works. Durability does not change: a commit is as
durable as the writer's ``synchronous`` setting makes it whether or not it has been
checkpointed yet, and the checkpointer's connection uses the same setting, so the database
file is synced before the WAL is reused. A checkpoint that fails is logged and counted and
tried again at the next interval; if the thread stops altogether the writer's fallback
checkpoints take over.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Literal

from actors.common.storage import open_database

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)

Synchronous = Literal["off", "normal", "full"]


class Checkpointer:
    """Owns one thread and its SQLite connection, checkpointing one WAL database."""

    def __init__(self, path: Path | str, *, synchronous: Synchronous, interval: float = 1.0,
                 fallback_pages: int = 20_000, name: str = "") -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.path = Path(path)
        self.synchronous = synchronous
        self.interval = interval
        self.fallback_pages = fallback_pages
        self.checkpoints = 0  # checkpoints run
        self.failures = 0  # checkpoints that raised
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"botvisor:checkpoint:{name or self.path.name}", daemon=True)

    @property
    def writer_pragma(self) -> str:
        """What the writer's connection must run to leave its checkpoints to this thread
        (:meth:`start` runs it on a writer it is given)."""
        return f"PRAGMA wal_autocheckpoint={self.fallback_pages}"

    def start(self, writer: sqlite3.Connection | None = None) -> Checkpointer:
        """Hand the checkpoints of ``writer`` (a connection to ``path``) to this thread;
        returns this checkpointer. Without ``writer`` the caller has run
        :attr:`writer_pragma` on the writing connection (one of another thread, say)."""
        if writer is not None:
            writer.execute(self.writer_pragma)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread (a checkpoint under way finishes first); True if it ended."""
        self._stop.set()
        if not self._thread.is_alive():
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def checkpoint(self, db: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint on ``db``: (busy, WAL pages, pages checkpointed)."""
        row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(row[0]), int(row[1]), int(row[2])

    def _run(self) -> None:
        try:
            db = open_database(self.path, isolation_level=None, min_free=0)
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        except sqlite3.Error as exc:
            log.error("checkpointer for %s could not open it (%s); the writer checkpoints "
                      "by itself", self.path.name, exc)
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.checkpoint(db)
                except sqlite3.Error as exc:
                    self.failures += 1
                    log.warning("checkpoint of %s failed (%s); trying again in %gs",
                                self.path.name, exc, self.interval)
        finally:
            db.close()
