"""The market clock file: where a replayed or synthetic feed got to, across processes.

:func:`read_clock` returns the position (and the closes) the last process leased, or the
start when there is no file or it was written for another source (logged);
:func:`write_clock` writes a new lease atomically. A file that cannot be read or written,
or is damaged, raises :class:`ClockError` naming it: market time must not run backwards.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from actors.common.storage import atomic_write
from actors.market.contract import MarketOrigin
from supervisor.faults import ActorFaults

log = logging.getLogger(__name__)

__all__ = [
    "ClockError",
    "read_clock",
    "write_clock",
]


class ClockError(RuntimeError):
    """The market clock file cannot be read or written; the message names the file."""


def read_clock(path: Path, source: str) -> MarketOrigin:
    """Where the last process's feed may have got to (its last lease), or the start."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.warning("no market clock file %s: the %s market starts at its first bar",
                    path, source)
        return MarketOrigin()
    except OSError as exc:
        raise ClockError(f"market clock file {path}: cannot read it: "
                         f"{exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        if data.get("source") != source:
            log.warning("market clock file %s was written for source %r: the %s "
                        "feed starts at its first bar", path, data.get("source"), source)
            return MarketOrigin()
        index = int(data["index"])
        closes = tuple((str(k), float(v)) for k, v in dict(data.get("closes", {})).items())
        if index < 0 or not all(math.isfinite(v) and v > 0 for _, v in closes):
            raise ValueError("a negative position or a bad price")
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise ClockError(
            f"market clock file {path} is damaged ({type(exc).__name__}: {exc}); "
            "market time must not run backwards, so the market does not start: restore "
            "the file, or delete it to start the market at its first bar") from None
    log.info("market clock %s: the %s feed resumes at step %d", path, source, index)
    return MarketOrigin(index, closes)


def write_clock(path: Path, source: str, lease: int, closes: Mapping[str, float],
                chaos: ActorFaults | None) -> None:
    """Lease the positions up to ``lease``, with the closes the feed got to."""
    record = {"version": 1, "source": source, "index": lease, "closes": dict(sorted(
        closes.items()))}
    try:
        atomic_write(path, json.dumps(record).encode("utf-8"), chaos)
    except OSError as exc:
        raise ClockError(f"market clock file {path}: cannot write it: "
                         f"{exc.strerror or exc}") from None
