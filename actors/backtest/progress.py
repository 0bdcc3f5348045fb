"""The commands' progress bar: on stderr when it is a terminal, else nothing at all."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress"]


@contextmanager
def progress(label: str, unit: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(done)``: a rich bar ``label`` of ``total`` ``unit`` on a terminal's
    stderr (gone when the block ends); on a pipe a call that draws nothing."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=Console(file=sys.stderr)) as bar:
        task = bar.add_task(unit, total=total)
        yield lambda done: bar.update(task, completed=done)
