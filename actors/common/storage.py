"""State-directory I/O: durable file writes, and SQLite connections that name their file.

:func:`atomic_write` and :func:`append_durably` write the sources' files durably.
:func:`open_database` opens every SQLite database of the bot: it checks that the directory
is writable with room (:data:`MIN_FREE_BYTES`), and its connection turns SQLite's I/O
failures into :class:`DatabaseIOError` (also a ``sqlite3.OperationalError``) and a damaged
file into :class:`DatabaseDamaged`, each naming the file. Both are
:class:`supervisor.errors.StorageFailure`, critical by the error handler's default rules
(docs/runtime.md, docs/reliability.md).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from supervisor.errors import StorageFailure
from supervisor.faults import WriteFaults

__all__ = [
    "MIN_FREE_BYTES",
    "DatabaseDamaged",
    "DatabaseIOError",
    "StorageFailure",
    "append_durably",
    "atomic_write",
    "check_writable",
    "open_database",
]

# Below this much free space a database is not opened: SQLite needs room for its -wal and
# -shm files before the first commit (the wal-index alone is 32 KiB).
MIN_FREE_BYTES = 128 * 1024

# The errno of a failed write that means the state directory itself is the problem.
_STATE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT})

# SQLite's primary result codes that mean the file or its filesystem failed, as errnos.
_SQLITE_IO = {
    sqlite3.SQLITE_IOERR: errno.EIO,
    sqlite3.SQLITE_FULL: errno.ENOSPC,
    sqlite3.SQLITE_READONLY: errno.EROFS,
    sqlite3.SQLITE_CANTOPEN: errno.EIO,
}


class DatabaseIOError(StorageFailure, sqlite3.OperationalError):
    """SQLite could not read or write its file; ``filename`` names it, ``errno`` says why."""


class DatabaseDamaged(StorageFailure, sqlite3.DatabaseError):
    """SQLite finds its file damaged (or a failing disk makes it look so); names the file."""


_SQLITE_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def check_writable(path: Path | str, *, min_free: int = MIN_FREE_BYTES) -> None:
    """Raise :class:`DatabaseIOError` if the directory of ``path`` exists but is read-only
    or has less than ``min_free`` bytes free (a missing directory is the caller's to make).
    """
    directory = Path(path).parent
    try:
        stat = os.statvfs(directory)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseIOError(exc.errno or errno.EIO,
                              f"cannot examine its directory ({exc.strerror})", str(path)
                              ) from exc
    if stat.f_flag & os.ST_RDONLY or not os.access(directory, os.W_OK):
        raise DatabaseIOError(errno.EROFS, f"its directory {directory} is read-only",
                              str(path))
    free = stat.f_bavail * stat.f_frsize
    if free < min_free:
        raise DatabaseIOError(errno.ENOSPC, f"only {free // 1024} KiB free in its directory "
                              f"{directory} (at least {min_free // 1024} KiB needed)",
                              str(path))


def _io_error(path: str, exc: sqlite3.Error) -> BaseException:
    """``exc`` as a :class:`DatabaseIOError` (an I/O failure) or a
    :class:`DatabaseDamaged` (a damaged file) naming ``path``; else ``exc`` itself."""
    if isinstance(exc, StorageFailure):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return exc
    error: DatabaseIOError | DatabaseDamaged
    if code & 0xFF in _SQLITE_DAMAGED:
        error = DatabaseDamaged(errno.EIO, str(exc), path)
    elif (number := _SQLITE_IO.get(code & 0xFF)) is not None:
        error = DatabaseIOError(number, str(exc), path)
    else:
        return exc
    error.sqlite_errorcode = code
    error.sqlite_errorname = str(getattr(exc, "sqlite_errorname", ""))
    return error


class StateConnection(sqlite3.Connection):
    """A connection whose I/O failures are :class:`DatabaseIOError`s naming its file."""

    filename: str = ""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _io_error(self.filename, exc) from exc

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise _io_error(self.filename, exc) from exc

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except sqlite3.Error as exc:
            raise _io_error(self.filename, exc) from exc

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            raise _io_error(self.filename, exc) from exc


def open_database(path: Path | str, *,
                  isolation_level: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None = None,
                  timeout: float = 5.0, check_same_thread: bool = True,
                  min_free: int = MIN_FREE_BYTES) -> sqlite3.Connection:
    """Open the SQLite database at ``path`` for writing (see the module's docstring)."""
    name = str(path)
    check_writable(path, min_free=min_free)
    try:
        db = sqlite3.connect(path, isolation_level=isolation_level, timeout=timeout,
                             check_same_thread=check_same_thread, factory=StateConnection)
    except sqlite3.Error as exc:
        raise _io_error(name, exc) from exc
    assert isinstance(db, StateConnection)
    db.filename = name
    return db


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _state_failure(path: Path, exc: OSError) -> OSError:
    """``exc`` as a :class:`StorageFailure` naming ``path`` when the directory is at fault."""
    if isinstance(exc, StorageFailure) or exc.errno not in _STATE_ERRNOS:
        return exc
    return StorageFailure(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def atomic_write(path: Path, data: bytes, faults: WriteFaults | None = None) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole.

    Temporary file in the same directory, fsync, rename over the target, fsync the directory.
    A full, read-only or failing directory raises :class:`StorageFailure` naming ``path``
    (the old file is then untouched). ``faults`` (the writer's ``ctx.chaos``) may fail the
    write first, as such a directory would.
    """
    _write_state(_atomic_write, path, data, faults)


def _write_state(write: Callable[[Path, bytes], None], path: Path, data: bytes,
                 faults: WriteFaults | None) -> None:
    """``write`` it, after the injected faults; an OSError becomes a StorageFailure."""
    try:
        if faults is not None:
            faults.before_write(path)
        write(path, data)
    except OSError as exc:
        raise _state_failure(path, exc) from exc


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One fixed temporary name per file (each file has one writer), so a write killed
    # half-way leaves a stale temporary that the next write simply overwrites.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def append_durably(path: Path, data: bytes, faults: WriteFaults | None = None) -> None:
    """Append ``data`` and fsync; a crash may leave a torn last line, which readers drop.
    A full, read-only or failing directory raises :class:`StorageFailure` naming ``path``;
    ``faults`` as for :func:`atomic_write`."""
    _write_state(_append_durably, path, data, faults)


def _append_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if new:
        _fsync_dir(path.parent)
