"""Hot-path machinery: taking a run of messages at once, cheap frozen messages, and a
ledger batch that fails part-way leaving nothing behind.

Real actors on real threads, a real SQLite file; waits are on events with timeouts.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.common.messages import Fill, Side
from actors.portfolio.contract import FillRecorded
from actors.portfolio.ledger import Ledger
from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec
from supervisor.context import Replied
from supervisor.fast_init import fast_init

WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Item:
    n: int


@dataclass(frozen=True, slots=True)
class Other:
    n: int


class RunTaker(SupervisedActor):
    """Blocks on its first message until released, then takes the run of Items behind it."""

    def __init__(self, holding: threading.Event, release: threading.Event,
                 limit: int) -> None:
        super().__init__()
        self.holding, self.release, self.limit = holding, release, limit
        self.seen: list[tuple[str, Any]] = []

    def on_receive(self, message: Any) -> Any:
        if message == "hold":
            self.holding.set()
            self.release.wait(WAIT)
            return None
        if isinstance(message, Item):
            run = self.ctx.take_run(Item, self.limit)
            self.seen.append(("handled", message.n))
            self.seen.append(("run", [m.n for m, _ in run]))
            for m, reply in run:
                if reply is not None:
                    reply.set(m.n * 10)  # the actor answers the asks it took
            return message.n * 10
        if isinstance(message, Other):
            self.seen.append(("other", message.n))
            return None
        if message == "seen":
            return list(self.seen)
        return None


def _runtime(limit: int) -> tuple[Runtime, threading.Event, threading.Event]:
    holding, release = threading.Event(), threading.Event()
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("taker", factory=lambda: RunTaker(holding, release, limit)),)))
    return rt, holding, release


def test_take_run_takes_the_like_messages_at_the_head_in_order_and_no_further() -> None:
    rt, holding, release = _runtime(limit=100)
    try:
        rt.tell("taker", "hold")
        assert holding.wait(WAIT)
        asks = [rt.ask_future("taker", Item(n)) for n in range(4)]
        rt.tell("taker", Other(99))  # ends the run: Items behind it are not taken early
        rt.tell("taker", Item(7))
        release.set()
        assert [f.get(timeout=WAIT) for f in asks] == [0, 10, 20, 30]
        seen = rt.ask("taker", "seen")
        assert seen == [
            ("handled", 0), ("run", [1, 2, 3]),
            ("other", 99),
            ("handled", 7), ("run", []),
        ]
    finally:
        release.set()
        rt.stop()


def test_take_run_respects_its_limit_and_leaves_the_rest_queued() -> None:
    rt, holding, release = _runtime(limit=2)
    try:
        rt.tell("taker", "hold")
        assert holding.wait(WAIT)
        for n in range(6):
            rt.tell("taker", Item(n))
        release.set()
        seen = rt.ask("taker", "seen")
        assert seen == [("handled", 0), ("run", [1, 2]), ("handled", 3), ("run", [4, 5])]
    finally:
        release.set()
        rt.stop()


def test_take_run_gives_nothing_to_an_instance_that_no_longer_owns_the_mailbox() -> None:
    rt, holding, release = _runtime(limit=10)
    try:
        cell = rt.cell("taker")
        stale = object()  # any instance other than the current owner
        rt.tell("taker", "hold")
        assert holding.wait(WAIT)
        rt.tell("taker", Item(1))
        assert cell.mailbox.take_run(stale, Item, 10) == []
        assert len(cell.mailbox) == 1  # untouched
        release.set()
        assert rt.ask("taker", "seen") == [("handled", 1), ("run", [])]
    finally:
        release.set()
        rt.stop()


# -- fast_init ------------------------------------------------------------------------------
@fast_init
@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    price: Decimal
    size: int = 1

    def __post_init__(self) -> None:
        if self.price <= 0:
            raise ValueError("price must be > 0")


def test_fast_init_keeps_every_dataclass_behaviour() -> None:
    q = Quote("BTC/USDT", Decimal("100"))
    assert q == Quote("BTC/USDT", Decimal("100"), 1)
    assert hash(q) == hash(Quote(symbol="BTC/USDT", price=Decimal("100")))
    assert repr(q) == "Quote(symbol='BTC/USDT', price=Decimal('100'), size=1)"
    assert dataclasses.replace(q, size=3).size == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.size = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="price must be > 0"):
        Quote("BTC/USDT", Decimal("0"))  # __post_init__ still runs
    with pytest.raises(TypeError):
        Quote("BTC/USDT")  # type: ignore[call-arg]  # a required field stays required


def test_fast_init_refuses_a_class_it_would_make_mutable_or_leaky() -> None:
    @dataclass(slots=True)
    class Mutable:
        n: int

    with pytest.raises(TypeError, match="frozen, slotted dataclass"):
        fast_init(Mutable)


# -- a ledger batch that fails part-way -----------------------------------------------------
def _fill(i: int, sym: str = "BTC/USDT", side: str = "buy", qty: str = "1") -> Fill:
    return Fill(f"f-{i}", f"o-{i}", sym, Side(side), Decimal(qty), Decimal("100"))


def test_duplicates_in_a_batch_are_found_by_the_unique_index_and_acknowledged(
        tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db", starting_cash=Decimal("10000"))
    ledger.open()
    try:
        ledger.record([_fill(1), _fill(2)], now=1.0)
        results, events = ledger.record([_fill(3), _fill(1), _fill(4), _fill(3)], now=2.0)
        assert results == [
            FillRecorded("f-3", 3, False),
            FillRecorded("f-1", 1, True),   # already in the ledger: its original seq
            FillRecorded("f-4", 4, False),
            FillRecorded("f-3", 3, True),   # twice in the same batch: recorded once
        ]
        assert [e.seq for e in events] == [3, 4]
        assert ledger.fill_count() == 4
        assert ledger.book.positions["BTC/USDT"].quantity == Decimal("4")
        assert ledger.book.cash == Decimal("9600")
    finally:
        ledger.close()


def test_a_batch_the_database_refuses_leaves_the_book_and_the_file_as_they_were(
        tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db", starting_cash=Decimal("10000"))
    ledger.open()
    try:
        ledger.record([_fill(1), _fill(2, sym="ETH/USDT")], now=1.0)
        before = (ledger.seq, ledger.book.cash, dict(ledger.book.positions),
                  ledger.book.fees, ledger.book.realized_pnl)
        # A real SQLite failure in the middle of the write: a trigger refuses one symbol.
        ledger.db.execute(
            "CREATE TRIGGER refuse AFTER INSERT ON fills WHEN NEW.symbol = 'XRP/USDT' "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        batch = [_fill(3), _fill(4, sym="ETH/USDT", side="sell", qty="1"),
                 _fill(5, sym="XRP/USDT")]
        with pytest.raises(sqlite3.Error, match="disk says no"):
            ledger.record(batch, now=2.0)
        after = (ledger.seq, ledger.book.cash, dict(ledger.book.positions),
                 ledger.book.fees, ledger.book.realized_pnl)
        assert after == before
        assert ledger.fill_count() == 2
        ledger.db.execute("DROP TRIGGER refuse")
        results, _ = ledger.record(batch, now=3.0)  # the same batch, resent, goes through
        assert [r.seq for r in results if isinstance(r, FillRecorded)] == [3, 4, 5]
        assert "ETH/USDT" not in ledger.book.positions  # the sell closed it
        reopened = Ledger(tmp_path / "l.db", starting_cash=Decimal("1"))
        reopened.open()
        try:
            assert reopened.book.cash == ledger.book.cash
            assert reopened.book.positions == ledger.book.positions
        finally:
            reopened.close()
    finally:
        ledger.close()


def test_a_fill_that_makes_the_book_impossible_is_recorded_and_said_so(
        tmp_path: Path) -> None:
    """A venue fill is a fact: recorded even when the book cannot afford it (the position
    actor then halts trading: tests/portfolio/test_rel_state_venue_facts.py)."""
    ledger = Ledger(tmp_path / "l.db", starting_cash=Decimal("150"))
    ledger.open()
    try:
        results, _ = ledger.record([_fill(1), _fill(2), _fill(3, side="sell", qty="2")],
                                   now=1.0)
        assert all(isinstance(r, FillRecorded) for r in results)  # 100 + 100 > 150
        assert ledger.book.cash == Decimal("150")  # -100 -100 +200
        assert "BTC/USDT" not in ledger.book.positions
        assert ledger.fill_count() == 3
        assert ledger.impossible == ()  # in venue order too: the sale came last
        results, _ = ledger.record([_fill(4, side="sell", qty="1")], now=2.0)
        assert ledger.impossible and "sold than held" in ledger.impossible[0]
    finally:
        ledger.close()


# -- ask_notify: ask without blocking, hear of the reply as a message ---------------------
class Slow(SupervisedActor):
    """Answers "fail" with an error, anything else with its double, once released."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        self.release.wait(WAIT)
        if message == "fail":
            raise ValueError("refused on purpose")
        return message * 2


class Asker(SupervisedActor):
    """Sends asks with ask_notify and keeps what it handled, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []
        self.futures: dict[str, Any] = {}
        self.replied = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "ask":
            _, token, payload = message
            self.futures[token] = self.ctx.ask_notify("slow", payload, token)
            self.log.append(("sent", token))  # the handler returned without waiting
            return None
        if isinstance(message, Replied):
            future = self.futures.pop(message.token)
            try:
                self.log.append(("replied", message.token, future.get(timeout=0)))
            except ValueError as exc:
                self.log.append(("failed", message.token, str(exc)))
            if not self.futures:
                self.replied.set()
            return None
        if message == "log":
            return list(self.log)
        return None


def test_ask_notify_returns_at_once_and_the_reply_arrives_as_a_message() -> None:
    release = threading.Event()
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("slow", factory=lambda: Slow(release)),
        ChildSpec("asker", factory=Asker),
    )))
    try:
        rt.tell("asker", ("ask", "a", 21))
        rt.tell("asker", ("ask", "b", "fail"))
        # the asker is free while "slow" holds both asks
        assert rt.ask("asker", "log") == [("sent", "a"), ("sent", "b")]
        release.set()
        asker = rt.cell("asker").actor
        assert asker is not None and asker.replied.wait(WAIT)  # type: ignore[attr-defined]
        assert rt.ask("asker", "log") == [
            ("sent", "a"), ("sent", "b"),
            ("replied", "a", 42),
            ("failed", "b", "refused on purpose"),
        ]
    finally:
        release.set()
        rt.stop()


def test_a_resent_fill_the_book_could_no_longer_afford_is_a_duplicate_not_a_rejection(
        tmp_path: Path) -> None:
    """Found by the property test: a buy that took most of the cash, sent again, must be
    acknowledged as the duplicate it is, not refused for want of cash."""
    ledger = Ledger(tmp_path / "l.db", starting_cash=Decimal("20000"))
    ledger.open()
    try:
        big = Fill("f-0", "o-0", "BTC/USDT", Side.BUY, Decimal("3.821"), Decimal("2617.12"))
        assert ledger.record([big], now=1.0)[0] == [FillRecorded("f-0", 1, False)]
        results, events = ledger.record([big], now=2.0)
        assert results == [FillRecorded("f-0", 1, True)] and events == []
        results, _ = ledger.record([_fill(9, qty="100"), big], now=3.0)  # and in a batch
        # the big buy is a fact (recorded, the book impossible); the resent one a duplicate
        assert results == [FillRecorded("f-9", 2, False), FillRecorded("f-0", 1, True)]
        assert ledger.impossible and "cash is" in ledger.impossible[0]
    finally:
        ledger.close()
