"""The fallback file: alerts no channel took, kept as JSON lines, held in memory meanwhile.

Owns :func:`fallback_line` (one undelivered alert as a line of JSON) and
:class:`FallbackFile`, which holds such lines in memory (at most ``memory`` of them, the
oldest dropped and counted) until :meth:`FallbackFile.write` appends them to the file,
oldest first. Only a line written whole leaves memory; a line cut short by a failed write
is ended before the next one. It neither logs nor schedules: ``write`` returns the error
and the caller decides when to try again.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path

__all__ = ["FallbackFile", "fallback_line"]


def fallback_line(at: float, key: str, severity: str, title: str, body: str, *, reason: str,
                  failures: dict[str, str]) -> str:
    """The fallback file's line for one alert that was not delivered (and why)."""
    record = {
        "at": at,
        "key": key,
        "severity": severity,
        "title": title,
        "body": body,
        "reason": reason,
        "failed": failures,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


class FallbackFile:
    """The lines held for the file at ``path``, and the counts of what became of them."""

    def __init__(self, path: str | None, memory: int) -> None:
        self.path = path
        self.memory = memory
        self.written = self.errors = self.dropped = 0
        self._held: deque[str] = deque()  # fallback lines not written yet, oldest first
        self._torn = False  # the fallback file ends in a line cut short by a failed write

    @property
    def pending(self) -> int:
        """How many lines are held, not written yet."""
        return len(self._held)

    def hold(self, line: str) -> None:
        """Keep ``line`` to be written; beyond ``memory`` lines the oldest is dropped."""
        self._held.append(line)
        if len(self._held) > self.memory:
            self._held.popleft()
            self.dropped += 1

    def write(self) -> OSError | None:
        """Append every held line to the file, oldest first; None if all are, else the
        error that stopped it (counted in ``errors``; the rest stay held)."""
        path = self.path
        if not path or not self._held:
            return None
        try:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if self._torn:  # an earlier attempt stopped mid-line: end that line first
                    os.write(fd, b"\n")
                    self._torn = False
                while self._held:
                    line = self._held[0].encode("utf-8")
                    done = 0
                    while done < len(line):
                        try:
                            done += os.write(fd, line[done:])
                        except OSError:
                            self._torn = done > 0
                            raise
                    self._held.popleft()  # only a line written whole leaves memory
                    self.written += 1
            finally:
                os.close(fd)
        except OSError as exc:
            self.errors += 1
            return exc
        return None
