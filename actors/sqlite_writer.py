"""SQLite writes off the actor's thread: a writer thread that commits statements in order.

An actor that shares a thread with others (see ``supervisor.dispatcher``) holds them all
up while it waits for SQLite: SQLite gives up the GIL while it writes, but the thread
itself stands still. The paper exchange writes one statement per order (0.2-0.4 ms here,
WAL with ``synchronous=NORMAL``); on the pipeline's thread that was the largest single
wait a tick could meet. A :class:`StatementWriter` takes such writes: the actor hands it
a statement and a callback and goes on with its next message; the writer thread commits
the statements one by one, in the order they came (each in its own implicit transaction),
and calls each callback with the outcome once its statement is committed, so an actor that
answers from the callback never acknowledges something that is not on disk yet.

Reads of what was written go through the actor's own connection after :meth:`flush`
(everything handed over so far is committed). :meth:`stop` commits what is queued before
the thread ends, so a clean stop (or a failing actor's ``on_failure``) loses nothing that
was accepted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import SimpleQueue
from typing import Any

__all__ = ["Done", "StatementWriter"]

log = logging.getLogger(__name__)

# Called on the writer thread once the statement is committed (error None) or has failed
# (the exception; nothing of that statement is in the database). It gets the writer's
# connection, e.g. to look up what an IntegrityError collided with.
Done = Callable[[BaseException | None, sqlite3.Connection], None]

_Job = tuple[str, Sequence[Any], Done] | threading.Event | None


class StatementWriter:
    """Owns one thread and its SQLite connection; commits the statements handed to it."""

    def __init__(self, path: Path | str, *, pragmas: Sequence[str] = (), name: str = "") -> None:
        self.path = Path(path)
        self.pragmas = tuple(pragmas)
        self.written = 0  # statements committed
        self.failed = 0  # statements that raised
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name=f"botvisor:writer:{name or self.path.name}", daemon=True)

    def start(self, timeout: float = 10.0) -> StatementWriter:
        """Start the thread and open its connection; raises what opening raised. Returns
        this writer."""
        self._thread.start()
        if not self._opened.wait(timeout):
            raise TimeoutError(f"the writer of {self.path.name} did not open it in {timeout}s")
        if self._open_error is not None:
            raise self._open_error
        return self

    def submit(self, sql: str, params: Sequence[Any], done: Done) -> None:
        """Commit ``sql`` with ``params`` after what was submitted before; ``done`` then."""
        if self._stopped:
            raise RuntimeError(f"the writer of {self.path.name} is stopped")
        self._jobs.put((sql, params, done))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed (or failed); True if so."""
        if self._stopped or not self._thread.is_alive():
            return True
        mark = threading.Event()
        self._jobs.put(mark)
        return mark.wait(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Commit what is queued, then end the thread and close; True if it ended."""
        if not self._stopped:
            self._stopped = True
            self._jobs.put(None)
        if self._thread is threading.current_thread() or not self._thread.is_alive():
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            for pragma in self.pragmas:
                db.execute(pragma)
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        jobs = self._jobs
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                if isinstance(job, threading.Event):
                    job.set()
                    continue
                sql, params, done = job
                error: BaseException | None = None
                try:
                    db.execute(sql, params)
                    self.written += 1
                except Exception as exc:
                    self.failed += 1
                    error = exc
                try:
                    done(error, db)
                except Exception:
                    log.exception("the callback of a write to %s raised", self.path.name)
        finally:
            db.close()
