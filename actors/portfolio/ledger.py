"""Ledger: the SQLite ledger of record (WAL, synchronous=FULL), owned by the position actor.

Tables: ``fills`` (the append-only event log, ordered by ``seq``, ``fill_id`` unique),
``positions`` and ``account`` (projections updated in the fills' transaction),
``adjustments`` (corrections by conflict resolution) and ``conflicts``. Amounts are decimal
text. A venue fill is always recorded (once, by fill id), even when it makes the book
impossible; :attr:`Ledger.impossible` then says why. A late fill is judged at its place in
venue order (``at``, then ``seq``) and still takes the next ``seq``. The schema and the
batched statements: :mod:`actors.portfolio.ledger_sql`; the rows' conversions:
:mod:`actors.portfolio.ledger_rows`; the judgement of an impossible book:
:mod:`actors.portfolio.ledger_judge`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.common.fill_digest import fold
from actors.common.messages import Fill
from actors.common.storage import open_database
from actors.portfolio.book import Position, PositionBook
from actors.portfolio.contract import FillRecorded, LedgerEvent
from actors.portfolio.ledger_judge import LATE_FILLS_SQL, book_problems, venue_order_problem
from actors.portfolio.ledger_rows import SIDE_TEXT, fill_of_row, position_json
from actors.portfolio.ledger_sql import (
    DELETE_POSITIONS,
    INSERT_FILLS,
    KNOWN_IDS,
    SCHEMA,
    UPSERT_ACCOUNT,
    UPSERT_POSITIONS,
)
from supervisor.fast_init import fast_init

__all__ = [
    "SCHEMA",
    "Ledger",
    "Rejected",
]


@fast_init
@dataclass(frozen=True, slots=True)
class Rejected:
    """A fill the ledger refused, with the reason; nothing was written for it."""

    fill_id: str
    reason: str


class Ledger:
    """Owns the SQLite file and the PositionBook that mirrors it; one thread uses it."""

    def __init__(
        self,
        path: str | Path,
        *,
        starting_cash: Decimal,
        allow_short: bool = False,
    ) -> None:
        self.path = Path(path)
        self.starting_cash = starting_cash
        self.allow_short = allow_short
        self._db: sqlite3.Connection | None = None
        self.book = PositionBook(starting_cash, allow_short=allow_short)
        self.seq = 0
        self.changed_at = 0.0  # time of the last change to the book (venue or wall time)
        self.newest_fill_at: float | None = None  # venue time of the newest fill recorded
        # why the book is impossible after the last record() (empty: it is possible)
        self.impossible: tuple[str, ...] = ()

    # -- opening -----------------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = open_database(self.path, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        self._db = db
        self._load()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("ledger is not open")
        return self._db

    def _load(self) -> None:
        db = self.db
        rows = dict(db.execute("SELECT key, value FROM account").fetchall())
        if "cash" not in rows:
            with self._transaction():
                self._put_account("cash", self.starting_cash)
                self._put_account("starting_cash", self.starting_cash)
                self._put_account("realized_pnl", Decimal(0))
                self._put_account("fees", Decimal(0))
            rows = dict(db.execute("SELECT key, value FROM account").fetchall())
        book = PositionBook(Decimal(rows["cash"]), allow_short=self.allow_short)
        book.realized_pnl = Decimal(rows["realized_pnl"])
        book.fees = Decimal(rows["fees"])
        for sym, qty, avg, rpnl, opened, updated in db.execute(
            "SELECT symbol, quantity, avg_price, realized_pnl, opened_at, updated_at FROM positions"
        ):
            book.positions[sym] = Position(
                sym, Decimal(qty), Decimal(avg), Decimal(rpnl), opened, updated
            )
        self.book = book
        self.starting_cash = Decimal(rows["starting_cash"])
        last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM fills").fetchone()[0]
        adj = db.execute("SELECT COALESCE(MAX(seq), 0) FROM adjustments").fetchone()[0]
        self.seq = max(int(last), int(adj))
        times = db.execute(
            "SELECT (SELECT COALESCE(MAX(at), 0) FROM fills), "
            "(SELECT COALESCE(MAX(at), 0) FROM adjustments)"
        ).fetchone()
        self.changed_at = max(float(times[0]), float(times[1]))
        self.newest_fill_at = self.last_fill_at()

    # -- writing -----------------------------------------------------------------------------
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: object, *_: object) -> None:
            if exc_type is None:
                self.db.execute("COMMIT")
            else:
                self.db.execute("ROLLBACK")

    def _transaction(self) -> Ledger._Tx:
        return Ledger._Tx(self.db)

    def _put_account(self, key: str, value: Decimal) -> None:
        UPSERT_ACCOUNT.run(self.db, [(key, str(value))])

    def _put_position(self, symbol: str) -> None:
        self._put_positions((symbol,))

    def _put_positions(self, symbols: Iterable[str]) -> None:
        """Write the book's state of ``symbols``: a few statements, whatever their number."""
        positions = self.book.positions
        gone = [s for s in symbols if s not in positions]
        rows = [(s, str(p.quantity), str(p.avg_price), str(p.realized_pnl), p.opened_at,
                 p.updated_at) for s in symbols if (p := positions.get(s)) is not None]
        DELETE_POSITIONS.run(self.db, gone, flat=True)
        UPSERT_POSITIONS.run(self.db, rows)

    def _put_totals(self) -> None:
        book = self.book
        UPSERT_ACCOUNT.run(self.db, [("cash", str(book.cash)),
                                     ("realized_pnl", str(book.realized_pnl)),
                                     ("fees", str(book.fees))])

    def record(
        self, fills: Iterable[Fill], now: float
    ) -> tuple[list[FillRecorded | Rejected], list[LedgerEvent]]:
        """Record ``fills`` in one transaction (one fsync). Duplicates are acknowledged with
        their original seq and not recorded again; invalid fills are rejected one by one.

        Fills are written optimistically: the ``fills.fill_id`` UNIQUE index is what
        detects a fill already in the ledger. When it does (a resent or replayed fill:
        rare), the transaction is rolled back and the batch is written again knowing which
        ids are already there, so the common case pays no lookup per fill.
        On a database error nothing is recorded and the in-memory book is as before.
        A fill is never refused for what it does to the book: afterwards
        :attr:`impossible` lists what is impossible about the book (see the module doc).
        """
        batch = list(fills)
        before = self.newest_fill_at
        try:
            results, events = self._record(batch, now, {}, complete=False)
        except sqlite3.IntegrityError:
            known = self._known_ids({f.fill_id for f in batch})
            results, events = self._record(batch, now, known, complete=True)
        self.impossible = self._judge(events, before) if events else ()
        return results, events

    def _judge(self, events: list[LedgerEvent], newest_before: float | None) -> tuple[str, ...]:
        """What is impossible about the book after ``events`` were recorded: its state
        now, and, when one of them is late, the fills from its venue time on, replayed in
        venue order."""
        found = book_problems(self.book, events, allow_short=self.allow_short)
        if not found and newest_before is not None:
            late = [e.fill.at for e in events if e.fill.at < newest_before]
            if late:
                problem = self._venue_order_problem(min(late))
                if problem is not None:
                    found.append(problem)
        return tuple(found)

    def _venue_order_problem(self, since: float) -> str | None:
        """Replay the fills at or after venue time ``since`` in venue order (``at``, then
        ``seq``): the first step that is impossible, or None. Only they are read (an index
        on ``at``): a fill late by a moment costs a few rows."""
        return venue_order_problem(self.book, self.db.execute(LATE_FILLS_SQL, (since,)),
                                   allow_short=self.allow_short)

    def _record(
        self, batch: list[Fill], now: float, known: dict[str, int], *, complete: bool
    ) -> tuple[list[FillRecorded | Rejected], list[LedgerEvent]]:
        """One attempt; ``known`` holds the ids already in the ledger when ``complete``,
        else only those seen in this batch (the UNIQUE index finds the others)."""
        results: list[FillRecorded | Rejected] = []
        events: list[LedgerEvent] = []
        touched: set[str] = set()
        book = self.book
        apply = book.apply
        saved = book.checkpoint()
        seq = self.seq
        try:
            with self._transaction():
                rows = []
                for fill in batch:
                    fill_id = fill.fill_id
                    prior = known.get(fill_id)
                    if prior is not None:
                        results.append(FillRecorded(fill_id, prior, duplicate=True))
                        continue
                    apply(fill, check=False)  # a fact: judged afterwards, never refused
                    seq += 1
                    rows.append((seq, fill_id, fill.client_order_id, fill.symbol,
                                 SIDE_TEXT[fill.side],
                                 str(fill.quantity), str(fill.price), str(fill.fee), fill.at,
                                 fill.venue, now))
                    known[fill_id] = seq
                    touched.add(fill.symbol)
                    results.append(FillRecorded(fill_id, seq, False))
                    events.append(LedgerEvent(seq, fill, book.last_realized))
                if rows:
                    INSERT_FILLS.run(self.db, rows)
                    self._put_positions(touched)
                    self._put_totals()
        except BaseException:
            book.rollback(saved)  # nothing of the batch is on disk: nothing of it in memory
            raise
        book.release()
        self.seq = seq
        if events:
            newest = max(e.fill.at for e in events)
            self.changed_at = max(self.changed_at, newest)
            if self.newest_fill_at is None or newest > self.newest_fill_at:
                self.newest_fill_at = newest
        return results, events

    def _known_ids(self, ids: set[str]) -> dict[str, int]:
        """seq of each id in ``ids`` already in the ledger (a few queries, cached shapes)."""
        return dict(KNOWN_IDS.run(self.db, list(ids), flat=True))

    def adjust_position(
        self, symbol: str, quantity: Decimal, avg_price: Decimal, reason: str, now: float
    ) -> int:
        """Overwrite a position (conflict resolution); recorded as an adjustment event."""
        old = self.book.positions.get(symbol)
        try:
            with self._transaction():
                self.seq += 1
                self.db.execute(
                    "INSERT INTO adjustments VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.seq, now, symbol, "position",
                     json.dumps(position_json(old)), json.dumps({"quantity": str(quantity),
                                                            "avg_price": str(avg_price)}),
                     reason),
                )
                self.book.set_position(symbol, quantity, avg_price, now)
                self.changed_at = max(self.changed_at, now)
                self._put_position(symbol)
        except sqlite3.Error:
            self._load()
            raise
        return self.seq

    def adjust_cash(self, cash: Decimal, reason: str, now: float) -> int:
        old = self.book.cash
        try:
            with self._transaction():
                self.seq += 1
                self.db.execute(
                    "INSERT INTO adjustments VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.seq, now, None, "cash", str(old), str(cash), reason),
                )
                self.book.cash = cash
                self.changed_at = max(self.changed_at, now)
                self._put_totals()
        except sqlite3.Error:
            self._load()
            raise
        return self.seq

    def save_conflict(self, record: dict[str, Any], now: float, keep: int) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT INTO conflicts (at, record) VALUES (?, ?)", (now, json.dumps(record))
            )
            self.db.execute(
                "DELETE FROM conflicts WHERE id <= (SELECT MAX(id) FROM conflicts) - ?", (keep,)
            )

    # -- reading -----------------------------------------------------------------------------
    def conflicts(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT record FROM conflicts ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [json.loads(r[0]) for r in reversed(rows)]

    def fills_since(self, seq: int, limit: int | None = None) -> Iterator[LedgerEvent]:
        sql = (
            "SELECT seq, fill_id, client_order_id, symbol, side, quantity, price, fee, at, venue "
            "FROM fills WHERE seq > ? ORDER BY seq"
        )
        args: tuple[Any, ...] = (seq,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (seq, limit)
        for row in self.db.execute(sql, args):
            yield LedgerEvent(row[0], fill_of_row(row[1:]))

    def trades(self, limit: int = 100) -> list[LedgerEvent]:
        rows = self.db.execute(
            "SELECT seq, fill_id, client_order_id, symbol, side, quantity, price, fee, at, venue "
            "FROM fills ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [LedgerEvent(r[0], fill_of_row(r[1:])) for r in reversed(rows)]

    def has_order(self, client_order_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM fills WHERE client_order_id = ? LIMIT 1", (client_order_id,)
        ).fetchone()
        return row is not None

    def last_fill_at(self, venue: str | None = None) -> float | None:
        """Venue time of the newest fill (from ``venue``, or any); None when there is none."""
        if venue is None:
            row = self.db.execute("SELECT MAX(at) FROM fills").fetchone()
        else:
            row = self.db.execute("SELECT MAX(at) FROM fills WHERE venue = ?", (venue,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def fill_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM fills").fetchone()[0])

    def fill_digests(self) -> dict[str, int]:
        """The digest of each venue's fill ids (``actors.common.fill_digest``)."""
        out: dict[str, int] = {}
        for venue, fill_id in self.db.execute("SELECT venue, fill_id FROM fills"):
            out[str(venue)] = fold(out.get(str(venue), 0), str(fill_id))
        return out

    def fill_counts(self) -> dict[str, int]:
        """How many fills each venue made, by venue name."""
        return {str(v): int(n) for v, n in self.db.execute(
            "SELECT venue, COUNT(*) FROM fills GROUP BY venue")}
