"""The ledger's SQL: its schema, and the statements it writes batches with.

Owns :data:`SCHEMA` (the tables ``fills``, ``positions``, ``account``, ``adjustments`` and
``conflicts``, created if missing), :class:`BatchStatement` (one statement per run size,
so that many rows take few statements) and the batched statements of the ledger's writes
and of its duplicate lookup. Text only: the :class:`~actors.portfolio.ledger.Ledger` runs
them on its connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

__all__ = [
    "DELETE_POSITIONS",
    "INSERT_FILLS",
    "KNOWN_IDS",
    "SCHEMA",
    "UPSERT_ACCOUNT",
    "UPSERT_POSITIONS",
    "BatchStatement",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY,
    fill_id TEXT NOT NULL UNIQUE,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    fee TEXT NOT NULL,
    at REAL NOT NULL,
    venue TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_order ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS fills_at ON fills (at);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY,
    quantity TEXT NOT NULL,
    avg_price TEXT NOT NULL,
    realized_pnl TEXT NOT NULL,
    opened_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS account (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS adjustments (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    symbol TEXT,
    field TEXT NOT NULL,
    old TEXT,
    new TEXT,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    record TEXT NOT NULL
);
"""


class BatchStatement:
    """One SQL statement per run size, for writing many rows with few statements.

    A batch is written with one multi-row statement per run instead of one statement step
    per row: SQLite does the same work, but the writer crosses into SQLite (and gives up
    the GIL) a handful of times per commit instead of once per row. Run sizes are powers
    of two, each with at most 999 parameters (SQLite's oldest limit), so the few shapes
    are built once and stay in the connection's statement cache.
    """

    __slots__ = ("largest", "sql")

    def __init__(self, template: str, columns: int) -> None:
        size = 1
        while size * 2 * columns <= 999 and size < 128:
            size *= 2
        self.largest = size
        one = "(" + ", ".join("?" * columns) + ")" if columns > 1 else "?"
        self.sql: dict[int, str] = {}
        while size:
            self.sql[size] = template.format(", ".join([one] * size))
            size //= 2

    def run(self, db: sqlite3.Connection, rows: Sequence[Any], flat: bool = False
            ) -> list[Any]:
        """Execute the statement over ``rows`` (tuples, or single values when ``flat``);
        the rows it returns (for a query)."""
        found: list[Any] = []
        start, count, size = 0, len(rows), self.largest
        while count:
            while size > count:
                size //= 2
            part = rows[start : start + size]
            cursor = db.execute(self.sql[size], part if flat else list(chain.from_iterable(part)))
            found += cursor.fetchall()
            start += size
            count -= size
        return found


INSERT_FILLS = BatchStatement("INSERT INTO fills VALUES {}", 11)
UPSERT_POSITIONS = BatchStatement(
    "INSERT INTO positions VALUES {} ON CONFLICT(symbol) DO UPDATE SET "
    "quantity=excluded.quantity, avg_price=excluded.avg_price, "
    "realized_pnl=excluded.realized_pnl, opened_at=excluded.opened_at, "
    "updated_at=excluded.updated_at",
    6,
)
UPSERT_ACCOUNT = BatchStatement(
    "INSERT INTO account (key, value) VALUES {} "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    2,
)
DELETE_POSITIONS = BatchStatement("DELETE FROM positions WHERE symbol IN ({})", 1)
KNOWN_IDS = BatchStatement("SELECT fill_id, seq FROM fills WHERE fill_id IN ({})", 1)
