"""Time text from a command line: a bare number or an ISO 8601 date or time, read one way.

``botvisor backtest``, ``optimise`` (epoch seconds) and ``download-data`` (epoch
milliseconds) all take times such as ``--from 2026-01-01`` through :func:`parse_when`. An
ISO 8601 text without a zone is UTC; a trailing ``Z`` is UTC. A bare number is in the unit
the command documents; a non-finite one (``nan``, ``inf``) is refused. A bad text raises
:class:`WhenError` (a ValueError) naming the option. :func:`format_when` writes a time the
way messages show it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

__all__ = ["WhenError", "format_when", "parse_when"]

_UNIT_TEXT = {"s": "epoch seconds", "ms": "ms since the epoch"}


def format_when(at: float) -> str:
    """Epoch seconds ``at`` as a UTC ISO 8601 time to the second.

    >>> format_when(1767225660.5)
    '2026-01-01T00:01:00Z'
    """
    return datetime.fromtimestamp(math.floor(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WhenError(ValueError):
    """A time text that is neither a number nor ISO 8601; the message names the option."""


def _instant(value: str, option: str, original: str, numbers: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WhenError(f"{option} {original!r} is neither {_UNIT_TEXT[numbers]} nor an ISO "
                        "8601 date or time (e.g. 2026-01-01 or 2026-01-01T12:00:00Z)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_when(text: str, option: str, *, numbers: Literal["s", "ms"] = "s") -> float:
    """``text`` as seconds since the epoch. A bare number is in ``numbers`` (seconds, or
    milliseconds: ``round(parse_when(t, o, numbers="ms") * 1000)`` gives back the exact
    ms of a time to the ms, a double holds them); WhenError names ``option``."""
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        return _instant(value, option, text, numbers).timestamp()
    if not math.isfinite(number):
        raise WhenError(f"{option} {text!r} is not a finite {_UNIT_TEXT[numbers]} value")
    return number / 1000 if numbers == "ms" else number
