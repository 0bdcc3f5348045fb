"""The end-of-run summary as it is shown: a rich table, or plain ``label: value`` lines.

Owns :func:`summary_table` (the summary's rows as a table, for a terminal) and
:func:`summary_text` (the rows aligned under a heading, then the notes, for a pipe or a
file). Plain functions of a :class:`~actors.run.contract.RunSummary`; printing is the
caller's.
"""

from __future__ import annotations

from rich.table import Table

from actors.run.contract import RunSummary

__all__ = ["summary_table", "summary_text"]


def summary_table(summary: RunSummary) -> Table:
    """The summary's rows as a two-column table (its notes are printed after it)."""
    table = Table(title="botvisor run summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in summary.rows():
        table.add_row(label, value)
    return table


def summary_text(summary: RunSummary) -> str:
    """The summary as plain lines: a heading, the rows with their labels aligned, notes."""
    rows = summary.rows()
    width = max(len(label) for label, _ in rows)
    lines = ["== botvisor run summary =="]
    lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
    lines += [f"note: {note}" for note in summary.notes]
    return "\n".join(lines)
