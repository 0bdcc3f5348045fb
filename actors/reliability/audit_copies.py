"""Reading a run's state without touching it: private copies of its files.

Owns :func:`open_copy` (a checked, read-only backup of a SQLite file into the audit's
temporary directory, or None with the file recorded as missing or damaged in the report),
:func:`read_fills` (a fills table as plain tuples), :func:`source_state` (a source's
file read by its own class from a copy) and :func:`load_sources` (every source so, each
one missing or damaged recorded in the report). The originals are opened read-only
(``immutable=1`` when no WAL is beside them) and never written.
"""

from __future__ import annotations

import shutil
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from actors.portfolio.sources import SourceActor, SourceSettings, SourceState
from actors.reliability.audit_report import AuditReport

__all__ = ["copy_db", "load_sources", "open_copy", "read_fills", "source_state", "table_names"]


def copy_db(path: Path, into: Path, name: str) -> Path:
    """A private copy of the SQLite file at ``path`` (its WAL applied), read read-only."""
    wal = path.with_name(path.name + "-wal")
    query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    src = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?{query}", uri=True,
                          timeout=10)
    copy = into / name
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
        ok = dst.execute("PRAGMA quick_check").fetchone()
        if ok is None or ok[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {ok[0] if ok else 'no answer'}")
    finally:
        dst.close()
        src.close()
    return copy


def table_names(db: sqlite3.Connection) -> set[str]:
    """The names of the tables in ``db``."""
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def open_copy(path: Path | None, label: str, into: Path, tables: set[str], *,
              report: AuditReport, name: str) -> sqlite3.Connection | None:
    """A connection to a copy of ``path``, or None (recorded as missing or damaged)."""
    if path is None:
        return None
    if not path.exists():
        report.missing.append(f"{path}: {label} is missing")
        return None
    try:
        copy = copy_db(path, into, name)
        db = sqlite3.connect(copy)
        lacking = tables - table_names(db)
    except sqlite3.DatabaseError as exc:
        report.violations.append(f"{path}: {label} is damaged ({exc})")
        return None
    if lacking:
        what = ("empty" if not table_names(db)
                else f"lacks table(s) {', '.join(sorted(lacking))}")
        report.violations.append(f"{path}: {label} is {what}")
        db.close()
        return None
    return db


_FILL_SQL = ("SELECT fill_id, client_order_id, symbol, side, quantity, price, fee, at "
             "FROM fills ORDER BY {}")


def read_fills(db: sqlite3.Connection, order: str) -> list[tuple[Any, ...]]:
    """The fills table of ``db`` in ``order``: seven strings and the time as a float."""
    return [tuple(str(v) if i < 7 else float(v) for i, v in enumerate(row))
            for row in db.execute(_FILL_SQL.format(order))]


def source_state(cls: type[SourceActor], settings: SourceSettings, path: Path,
                 into: Path) -> SourceState:
    """The source's file, read by its own class, from a private copy (a source's reader may
    repair what it reads, e.g. drop a torn last line)."""
    copy = into / f"source-{path.name}"
    shutil.copyfile(path, copy)
    actor = cls(settings.model_copy(update={"path": str(copy)}))
    return actor.load()


def load_sources(sources: dict[str, tuple[type[SourceActor], SourceSettings, Path]],
                 into: Path, *, has_fills: bool, report: AuditReport,
                 ) -> dict[str, tuple[type[SourceActor], SourceState, Path]]:
    """Each source's state read from a copy; a missing file is missing once the ledger has
    fills (a note before), a file its reader cannot read is damaged."""
    states: dict[str, tuple[type[SourceActor], SourceState, Path]] = {}
    for name, (cls, settings, path) in sources.items():
        if not path.exists():
            if has_fills:
                report.missing.append(f"{path}: source {name} is missing")
            else:
                report.notes.append(f"{path}: source {name} not written yet (no fills)")
            continue
        try:
            states[name] = (cls, source_state(cls, settings, path, into), path)
        except Exception as exc:  # whatever its reader raises, the file is damaged
            report.violations.append(f"{path}: source {name} is damaged "
                                     f"({type(exc).__name__}: {exc})")
    return states
