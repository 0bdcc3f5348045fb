"""A small state file kept at the latest content handed to it, written off the caller's thread.

:class:`LatestFileWriter` owns one thread and one file. :meth:`~LatestFileWriter.put` never
waits for the disk: it replaces the content waiting to be written and wakes the thread,
which writes the newest content atomically and durably
(:func:`~actors.common.storage.atomic_write`), so contents handed over faster than the disk
takes them are coalesced, and the file only ever holds a whole content that was put. A
write that fails is kept and raised by the next :meth:`~LatestFileWriter.put` (or by
:meth:`~LatestFileWriter.close`), naming the file, so its owner fails as a direct write
would have made it fail. :meth:`~LatestFileWriter.close` writes what is still waiting and
joins the thread.

``min_interval`` (seconds) paces the writes: a content put less than that after the last
write starts is written when the interval is up (with whatever was put meanwhile), so an
owner that puts thousands of times a second costs the disk, and the process's other
threads, a few writes a second; the first content after a quiet interval goes at once, and
``close`` does not wait for the interval.

What is lost when the process is killed: a content put and not yet written (normally for
less than a millisecond; up to ``min_interval`` more while puts come faster than that). A
file that must never lag its owner by even that is written by the owner itself.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "state.json"
>>> writer = LatestFileWriter(path)
>>> writer.put(b'{"n": 1}'); writer.put(b'{"n": 2}')
>>> writer.close()
>>> path.read_bytes()
b'{"n": 2}'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from actors.common.storage import atomic_write
from supervisor.faults import WriteFaults

log = logging.getLogger(__name__)

__all__ = ["LatestFileWriter"]


class LatestFileWriter:
    """Owns the thread that writes ``path`` (see the module docstring); ``faults`` (the
    owner's ``ctx.chaos``) may fail a write first, as a failing disk would."""

    def __init__(self, path: Path, faults: WriteFaults | None = None, *,
                 name: str | None = None, min_interval: float = 0.0) -> None:
        self.path = path
        self._faults = faults
        self._min_interval = min_interval
        self._cond = threading.Condition()
        self._waiting: bytes | Callable[[], bytes] | None = None
        self._error: BaseException | None = None
        self._closing = False
        self._written = 0  # contents written (a put replaced before it was written: none)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name or f"writer-{path.name}")
        self._thread.start()

    @property
    def written(self) -> int:
        """How many contents reached the file so far."""
        with self._cond:
            return self._written

    def put(self, data: bytes | Callable[[], bytes]) -> None:
        """Make ``data`` the file's next content; raises the last write's failure, if any.

        ``data`` may be a function that makes the content: it is called on the writer's
        thread, and only for a content that is written (one replaced first never is), so an
        owner that puts often pays for no encoding on its own thread. It must read nothing
        its owner changes afterwards."""
        with self._cond:
            self._raise_failure()
            if self._closing:
                raise RuntimeError(f"{self.path}: its writer is closed")
            self._waiting = data
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting, stop the thread (waiting at most ``timeout`` seconds), and
        raise a write's failure, if one happened."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._cond:
            if self._thread.is_alive():
                raise TimeoutError(f"{self.path}: the last write did not end in {timeout:g} s")
            self._raise_failure()

    def _raise_failure(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        due = 0.0  # (monotonic) when the next write may start
        while True:
            with self._cond:
                while self._waiting is None and not self._closing:
                    self._cond.wait()
                while not self._closing:  # paced: what is put meanwhile goes with it
                    rest = due - time.monotonic()
                    if rest <= 0:
                        break
                    self._cond.wait(rest)
                data, self._waiting = self._waiting, None
                if data is None:  # closing, and nothing left to write
                    return
            due = time.monotonic() + self._min_interval
            try:
                atomic_write(self.path, data() if callable(data) else data, self._faults)
            except Exception as exc:  # kept for the owner's next put
                log.error("cannot write %s: %s", self.path, exc)
                with self._cond:
                    self._error = exc
            else:
                with self._cond:
                    self._written += 1
