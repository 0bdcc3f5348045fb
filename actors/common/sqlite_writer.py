"""SQLite work off the actor's thread: a writer thread that runs statements in order.

A :class:`StatementWriter` takes a statement (or a read, :meth:`StatementWriter.query`)
with a callback; its thread runs the jobs one by one in the order they came (each
statement its own transaction) and calls each callback once its statement is committed,
so an actor that answers from the callback never acknowledges what is not on disk. A read
sees every write queued before it. :meth:`stop` runs what is queued; a stop that times out
fails what is left rather than run it. Why (a shared thread waiting on SQLite):
docs/trading-bot.md ("The pipeline", ``exchange``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from actors.common.storage import open_database

__all__ = ["Answer", "Done", "StatementWriter", "WriterStopped"]

log = logging.getLogger(__name__)

# Called on the writer thread once the statement is committed (error None) or has failed
# (the exception; nothing of that statement is in the database). It gets the writer's
# connection, e.g. to look up what an IntegrityError collided with.
Done = Callable[[BaseException | None, sqlite3.Connection], None]
# Called on the writer thread with a read's result, or the exception it raised.
Answer = Callable[[Any, BaseException | None], None]


class WriterStopped(RuntimeError):
    """The writer stopped before it could run this job (nothing of it was done)."""


class _Write:
    __slots__ = ("done", "params", "sql")

    def __init__(self, sql: str, params: Sequence[Any], done: Done) -> None:
        self.sql, self.params, self.done = sql, params, done


class _Read:
    __slots__ = ("answer", "read")

    def __init__(self, read: Callable[[sqlite3.Connection], Any], answer: Answer) -> None:
        self.read, self.answer = read, answer


_Job = _Write | _Read | threading.Event | None


class StatementWriter:
    """Owns one thread and its SQLite connection; runs the jobs handed to it in order."""

    def __init__(self, path: Path | str, *, pragmas: Sequence[str] = (), name: str = "",
                 busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.pragmas = tuple(pragmas)
        self.busy_timeout = busy_timeout
        self.written = 0  # statements committed
        self.failed = 0  # statements that raised
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._stopped = False
        self._abandoned = False  # a stop timed out: fail what is left, run nothing more
        self._thread = threading.Thread(
            target=self._run, name=f"botvisor:writer:{name or self.path.name}", daemon=True)

    def start(self, timeout: float = 10.0) -> StatementWriter:
        """Start the thread and open its connection; raises what opening raised. Returns
        this writer."""
        self._thread.start()
        if not self._opened.wait(timeout):
            self.stop(0)
            raise TimeoutError(f"the writer of {self.path.name} did not open it in {timeout}s")
        if self._open_error is not None:
            raise self._open_error
        return self

    def submit(self, sql: str, params: Sequence[Any], done: Done) -> None:
        """Commit ``sql`` with ``params`` after what was handed over before; ``done`` then.
        Raises :class:`WriterStopped` once the writer is stopping or its thread is gone."""
        self._put(_Write(sql, params, done))

    def query(self, read: Callable[[sqlite3.Connection], Any], answer: Answer) -> None:
        """Run ``read`` on the writer's connection after what was handed over before (so it
        sees every write before it); ``answer`` gets its result or exception."""
        self._put(_Read(read, answer))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over so far has run; True if it has."""
        mark = threading.Event()
        try:
            self._put(mark)
        except WriterStopped:
            return not self._thread.is_alive()
        return mark.wait(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Run what is queued, then end the thread and close; True if it ended. After a
        timeout whatever is still queued fails with :class:`WriterStopped` instead."""
        if not self._stopped:
            self._stopped = True
            self._jobs.put(None)
        if self._thread is threading.current_thread() or not self._thread.is_alive():
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandoned = True
            log.error("the writer of %s did not finish in %gs; what is still queued fails",
                      self.path.name, timeout)
            return False
        return True

    def _put(self, job: _Job) -> None:
        if self._stopped or not self._thread.is_alive():
            raise WriterStopped(f"the writer of {self.path.name} is stopped")
        self._jobs.put(job)

    def _run(self) -> None:
        try:
            db = open_database(self.path, isolation_level=None, timeout=self.busy_timeout)
            for pragma in self.pragmas:
                db.execute(pragma)
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        jobs = self._jobs
        try:
            while (job := jobs.get()) is not None:
                if isinstance(job, threading.Event):
                    job.set()
                elif self._abandoned:
                    self._fail(job, db)
                elif isinstance(job, _Write):
                    self._write(job, db)
                else:
                    self._read(job, db)
        finally:
            db.close()

    def _write(self, job: _Write, db: sqlite3.Connection) -> None:
        error: BaseException | None = None
        try:
            db.execute(job.sql, job.params)
            self.written += 1
        except Exception as exc:
            self.failed += 1
            error = exc
        try:
            job.done(error, db)
        except Exception:
            log.exception("the callback of a write to %s raised", self.path.name)

    def _read(self, job: _Read, db: sqlite3.Connection) -> None:
        try:
            result, error = job.read(db), None
        except Exception as exc:
            result, error = None, exc
        try:
            job.answer(result, error)
        except Exception:
            log.exception("the callback of a read of %s raised", self.path.name)

    def _fail(self, job: _Write | _Read, db: sqlite3.Connection) -> None:
        error = WriterStopped(f"the writer of {self.path.name} stopped before this job")
        try:
            if isinstance(job, _Write):
                job.done(error, db)
            else:
                job.answer(None, error)
        except Exception:
            log.exception("the callback of a job for %s raised", self.path.name)
