"""The paper exchange: plays the venue with fees and slippage, and keeps its own fill record.

A :class:`~actors.venues.contract.Venue`: orders are idempotent by client order id and
``LookupOrder`` says what happened to one. Its SQLite record of fills, the venue's side
against which the ledger is checked, is written by a
:class:`~actors.common.sqlite_writer.StatementWriter`: an order is priced on the actor's
thread and answered once its record is committed; lookups and fill listings read after
everything handed over before them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pykka
from pydantic import BaseModel, ConfigDict, Field

from actors.common.fill_digest import digest
from actors.common.messages import Fill, Side
from actors.common.settings_types import StatePath
from actors.common.sqlite_writer import StatementWriter
from actors.common.storage import open_database
from actors.common.wal_checkpoint import Checkpointer
from actors.market.contract import Bar, Bars, MarketCursor
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    GetVenueRecord,
    LookupOrder,
    OrderResult,
    PlaceOrder,
    VenueRecord,
)
from actors.venues.paper_pricing import FillPricing, paper_fill
from supervisor import SupervisedActor
from supervisor.errors import UnknownActor
from supervisor.peers import Peer

__all__ = [
    "PaperExchange",
]


class PaperExchange(SupervisedActor):
    """Owns the venue's order and fill record (SQLite) and the bars told to it directly;
    it prices orders at the newer of those and the market's published latest bars."""

    accepts: ClassVar[tuple[type, ...]] = (
        Bars, PlaceOrder, LookupOrder, GetVenueFills, GetVenueRecord, GetOpenOrders)

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        database: StatePath = "state/paper_exchange.db"
        fee_bps: Decimal = Field(Decimal("10"), ge=0)
        slippage_bps: Decimal = Field(Decimal("5"), ge=0)
        quantity_places: int = Field(8, ge=0)
        price_places: int = Field(8, ge=0)
        # The venue's record must survive a crash of this process (kill -9), which WAL with
        # synchronous=NORMAL guarantees; a real venue keeps its record on its own servers,
        # so surviving a power cut of this machine is not part of playing one. "full"
        # fsyncs every order as the ledger does (about 1 ms more per order here).
        synchronous: Literal["normal", "full"] = "normal"
        # WAL checkpoints run on a thread of their own every this many seconds, not inside
        # an order's commit (see actors.common.wal_checkpoint)
        checkpoint_interval: float = Field(1.0, gt=0)
        # The market actor whose published latest bars price the orders (besides any Bars
        # told to this actor directly: the newer bar of a symbol counts); None: only those
        market: Annotated[str | None, Peer(publishes=MarketCursor)] = "market"

        def pricing(self) -> FillPricing:
            """The fill pricing of these settings (the exchange's, and a backtest's)."""
            return FillPricing(self.fee_bps, self.slippage_bps, self.quantity_places,
                               self.price_places)

    def __init__(self, settings: PaperExchange.Settings | None = None) -> None:
        super().__init__()
        s = self.settings = settings or PaperExchange.Settings()
        self.pricing = s.pricing()
        self.prices: dict[str, Bar] = {}  # the last bar of each symbol
        self._writer: StatementWriter | None = None  # every write and read of the record
        self._checkpointer: Checkpointer | None = None
        self._newest_at = float("-inf")  # the venue time of the newest fill in the record

    def on_start(self) -> None:
        path = Path(self.settings.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._newest_at = _create_schema(path)
        sync = self.settings.synchronous
        checkpointer = Checkpointer(path, synchronous=sync,
                                    interval=self.settings.checkpoint_interval,
                                    name="paper_exchange")
        self._writer = StatementWriter(
            path, name="paper_exchange",
            pragmas=(f"PRAGMA synchronous={sync.upper()}", checkpointer.writer_pragma)).start()
        self._checkpointer = checkpointer.start()

    def on_stop(self) -> None:
        if self._writer is not None:  # what was accepted is committed (and answered) first
            self._writer.stop(timeout=30.0)
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()  # a crashed instance commits what it accepted and closes too

    def on_receive(self, message: Any) -> Any:
        match message:
            case Bars(bars):
                prices = self.prices
                for bar in bars:  # every bar of every symbol: the Decimal waits for an order
                    prices[bar.symbol] = bar
                return None
            case PlaceOrder():
                self._place(message)
                return None
            case LookupOrder(coid):
                self._query(partial(_lookup, coid=coid))
                return None
            case GetVenueFills(since):
                self._query(partial(_fills, since=since))
                return None
            case GetVenueRecord():
                self._query(partial(_record, where=self.settings.database))
                return None
            case GetOpenOrders():
                return ()  # every order is filled or rejected at once
        return super().on_receive(message)

    def _query(self, read: Callable[[sqlite3.Connection], Any]) -> None:
        """Answer the ask being handled with ``read``, run by the writer after every write
        handed to it before: a lookup never misses an order accepted before it, and the
        actor's thread never waits for SQLite."""
        assert self._writer is not None
        reply = self.defer_reply()
        try:
            self._writer.query(read, partial(_reply, reply))
        except Exception as exc:
            _reply(reply, None, exc)
            raise

    def _quote(self, symbol: str) -> Bar | None:
        """The latest bar of ``symbol``: the newest of one told directly, the market's
        published latest (a live feed's forming candle) and its last closed one (a tie
        goes to the earlier named)."""
        told = self.prices.get(symbol)
        cursor = None
        if self.settings.market is not None:
            with suppress(UnknownActor):  # no market in this tree: only bars told directly
                cursor = self.ctx.peek(self.settings.market)
        published = None
        if isinstance(cursor, MarketCursor):
            latest, closed = cursor.latest.get(symbol), cursor.last.get(symbol)
            published = closed if latest is None or (
                closed is not None and closed.at > latest.at) else latest
        if published is None or (told is not None and told.at >= published.at):
            return told
        return published

    def _place(self, order: PlaceOrder) -> None:
        """Fill (or reject) ``order``, once per client order id, and answer it once the
        record is committed. The ``orders`` primary key is what finds a repeated id (the
        writer's statement fails whole, leaving nothing behind): the same id again gets the
        first answer, so a new order costs no lookup first."""
        quote = self._quote(order.symbol)
        reason = "no market price yet" if quote is None else \
            self.pricing.refusal(order.quantity)
        if reason is not None:
            self._write("INSERT INTO orders VALUES (?, ?, ?, ?, 'rejected', ?)",
                        (order.client_order_id, order.symbol, order.side.value,
                         str(order.quantity), reason),
                        OrderResult(order.client_order_id, "rejected", (), reason))
            return
        assert quote is not None
        # A venue's clock never runs backwards: a fill is stamped no earlier than the
        # record's newest (a market restarted behind it, a bar told late)
        last, at = Decimal(repr(quote.close)), max(quote.at, self._newest_at)
        self._newest_at = at
        fill = paper_fill(order.client_order_id, order.symbol, order.side,
                          self.pricing.fill(order.side, order.quantity, last), at)
        # the order's row comes with it (trigger fill_records_its_order)
        self._write("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (fill.fill_id, fill.client_order_id, fill.symbol, fill.side.value,
                     str(fill.quantity), str(fill.price), str(fill.fee), fill.at),
                    OrderResult(order.client_order_id, "filled", (fill,)))

    def _write(self, sql: str, params: tuple[Any, ...], result: OrderResult) -> None:
        """Hand the order's record to the writer; the ask being handled is answered with
        ``result`` once it is committed (see :func:`_answer`). The order is priced before
        the reply is taken over, so a failure up to here is answered by the runtime."""
        assert self._writer is not None
        if self.ctx.chaos is not None:  # rehearsal: the record's disk fails (nothing is sent)
            self.ctx.chaos.before_write(self.settings.database)
        reply = self.defer_reply()
        try:
            self._writer.submit(sql, params, partial(_answer, reply, result))
        except Exception as exc:  # the writer is gone: say so, and let this instance fail
            _reply(reply, None, exc)
            raise


def _create_schema(path: Path) -> float:
    """Create the record's tables if need be; the venue time of its newest fill."""
    db = open_database(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS orders (client_order_id TEXT PRIMARY KEY, "
                   "symbol TEXT, side TEXT, quantity TEXT, status TEXT, reason TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS fills (fill_id TEXT PRIMARY KEY, "
                   "client_order_id TEXT, symbol TEXT, side TEXT, quantity TEXT, price TEXT, "
                   "fee TEXT, at REAL)")
        db.execute("CREATE INDEX IF NOT EXISTS fills_at ON fills (at)")
        # A fill brings its order's row with it, in the same statement (so in the same
        # implicit transaction): one call into SQLite per order instead of four (begin, two
        # inserts, commit).
        db.execute("CREATE TRIGGER IF NOT EXISTS fill_records_its_order AFTER INSERT ON fills "
                   "BEGIN INSERT INTO orders VALUES (NEW.client_order_id, NEW.symbol, NEW.side, "
                   "NEW.quantity, 'filled', ''); END")
        newest = db.execute("SELECT MAX(at) FROM fills").fetchone()[0]
    finally:
        db.close()
    return float("-inf") if newest is None else float(newest)


def _answer(reply: pykka.Future[Any] | None, result: OrderResult,
            error: BaseException | None, db: sqlite3.Connection) -> None:
    """On the writer's thread, once an order's statement is done: answer with ``result``,
    or, if the client order id was already there, with the first answer it got."""
    if error is None:
        if reply is not None:
            reply.set(result)
        return
    if isinstance(error, sqlite3.IntegrityError):
        try:
            known = _lookup(db, result.client_order_id)
        except sqlite3.Error as exc:
            error = exc
        else:
            if known is not None:  # idempotent: the same client order id never fills twice
                if reply is not None:
                    reply.set(known)
                return
    _reply(reply, None, error)


def _reply(reply: pykka.Future[Any] | None, result: Any, error: BaseException | None) -> None:
    """Answer a deferred ask (nothing to do for a tell)."""
    if reply is None:
        return
    if error is None:
        reply.set(result)
    else:
        reply.set_exception(exc_info=(type(error), error, error.__traceback__))


def _fills(db: sqlite3.Connection, since: float | None) -> list[Fill]:
    """The fills of the record, oldest first (those at or after venue time ``since``)."""
    sql = "SELECT fill_id, client_order_id, symbol, side, quantity, price, fee, at FROM fills"
    args: tuple[float, ...] = ()
    if since is not None:
        sql += " WHERE at >= ?"
        args = (since,)
    return [_fill(r) for r in db.execute(sql + " ORDER BY rowid", args).fetchall()]


def _record(db: sqlite3.Connection, where: str) -> VenueRecord:
    """How many fills the record holds, and the digest of their ids."""
    ids = [str(fid) for (fid,) in db.execute("SELECT fill_id FROM fills")]
    return VenueRecord("paper", len(ids), where, digest(ids))


def _lookup(db: sqlite3.Connection, coid: str) -> OrderResult | None:
    """What the record says of client order id ``coid`` (None: never seen)."""
    row = db.execute("SELECT status, reason FROM orders WHERE client_order_id = ?",
                     (coid,)).fetchone()
    if row is None:
        return None
    fills = db.execute(
        "SELECT fill_id, client_order_id, symbol, side, quantity, price, fee, at FROM fills "
        "WHERE client_order_id = ?", (coid,)).fetchall()
    return OrderResult(coid, row[0], tuple(_fill(f) for f in fills), row[1])


def _fill(row: tuple[Any, ...]) -> Fill:
    fill_id, coid, symbol, side, qty, price, fee, at = row
    return Fill(fill_id, coid, symbol, Side(side), Decimal(qty), Decimal(price), Decimal(fee),
                at, "paper")
