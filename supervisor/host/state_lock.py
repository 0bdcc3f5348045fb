"""StateLock: one bot per state directory.

``botvisor run`` takes an exclusive lock on ``<state_dir>/botvisor.lock`` before it opens
anything else, and holds it until the process ends. A second run on the same directory
fails at once with :class:`StateLocked`, naming the directory and the pid that holds it.

The lock is ``flock(2)`` on an open file, so the kernel releases it when the holder dies,
``kill -9`` included: a stale lock file never keeps the next run out. The pid written into
the file is for the message only; the lock, not the file's content, decides.

>>> lock = StateLock.acquire(Path("state"))   # doctest: +SKIP
>>> lock.release()                             # doctest: +SKIP
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_NAME", "StateLock", "StateLocked"]

LOCK_NAME = "botvisor.lock"


class StateLocked(Exception):
    """Another process holds the state directory's lock (or it cannot be taken)."""

    def __init__(self, directory: Path, pid: int | None, detail: str = "") -> None:
        self.directory = directory
        self.pid = pid
        if detail:
            text = f"cannot lock state directory {directory}: {detail}"
        else:
            holder = f"pid {pid}" if pid is not None else "another process"
            text = (f"state directory {directory} is in use by another bot ({holder} holds "
                    f"{directory / LOCK_NAME}); one bot per state directory")
        super().__init__(text)


class StateLock:
    """Owns the open lock file of one state directory while the run lasts."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path) -> StateLock:
        """Take the lock (creating the directory if needed); StateLocked if it is held."""
        directory = directory.resolve()
        path = directory / LOCK_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateLocked(directory, None, exc.strerror or str(exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateLocked(directory, pid) from None
            raise StateLocked(directory, None, exc.strerror or str(exc)) from None
        try:  # for the message of a second instance; failing to write it is harmless
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        return cls(directory, fd)

    def release(self) -> None:
        """Give the lock up (the process ending does the same)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
