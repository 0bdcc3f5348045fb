"""How the operator's commands draw values with rich: state words in colour, durations,
times, exact numbers and two-column tables. Shared by the runtime's own commands
(:mod:`supervisor.host.operator_cli`) and the plug-ins'
(:mod:`supervisor.host.operator_plugins`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["STATE_STYLES", "console", "duration", "number", "pairs", "styled", "when"]

# The actors' lifecycle states; a plug-in adds its own words (ForwardedCommand.state_styles).
STATE_STYLES: Mapping[str, str] = {
    "running": "green", "starting": "cyan", "restarting": "yellow",
    "stopped": "red", "terminated": "magenta",
}


def console() -> Console:
    """Colours only on a terminal (rich's own check; NO_COLOR is honoured); piped output is
    not wrapped at 80 columns, so that every line stays greppable."""
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS")
    return Console(highlight=False, width=None if wide else 160)


def styled(value: Any, styles: Mapping[str, str] | None = None) -> Text:
    """``value`` as text, coloured by ``styles`` or the lifecycle states' styles."""
    text = str(value)
    style = (styles or {}).get(text) or STATE_STYLES.get(text, "")
    return Text(text, style=style)


def duration(seconds: float | None) -> str:
    """``12.5s``, ``3m 04s``, ``2h 05m``, ``1d 03h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def when(epoch: float | None) -> str:
    """A wall-clock time in local time, ``-`` for none."""
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def number(value: Any) -> str:
    """An exact number without trailing zeros (anything else as its text)."""
    try:
        return f"{Decimal(str(value)).normalize():f}"
    except (InvalidOperation, ValueError):
        return str(value)


def pairs(title: str | None = None) -> Table:
    """A two-column table without borders: a bold key, then its value."""
    table = Table(show_header=False, box=None, title=title, title_justify="left",
                  pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table
