"""WAL checkpoints off the writer's thread.

A :class:`Checkpointer` turns a writer connection's own checkpoints down to a safety net
(``fallback_pages``) and runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval`` seconds
from its own thread and connection, with the writer's ``synchronous`` setting: it never
waits for the writer nor blocks it, and durability is unchanged. A failed checkpoint is
logged, counted and tried again; if the thread stops, the writer's fallback checkpoints
take over. Why: docs/trading-bot.md ("Checkpoints off the writer's thread").
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
