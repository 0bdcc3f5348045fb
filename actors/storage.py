"""Durable file writes: atomic replace and fsync'd appends."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["append_durably", "atomic_write"]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole.

    Temporary file in the same directory, fsync, rename over the target, fsync the directory.
    """
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


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` and fsync; a crash may leave a torn last line, which readers drop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if new:
        _fsync_dir(path.parent)
