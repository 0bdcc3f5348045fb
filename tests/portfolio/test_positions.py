"""The position actor: exact accounting, durability, dedup, group commit, concurrency."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.common.messages import Fill, HaltTrading, InvalidFill, Side
from actors.portfolio.book import PositionBook
from actors.portfolio.contract import (
    FillRecorded,
    GetPortfolio,
    GetTrades,
    HasOrder,
    MarkPrice,
    RecordFill,
)
from actors.portfolio.ledger import Ledger
from tests.support.position_helpers import GatedPositions, start_ledger

CENT = Fraction(1, 100)


class Reference:
    """The simplest model of the same accounting: Fractions, average cost, no rounding."""

    def __init__(self, cash: Fraction) -> None:
        self.cash = cash
        self.qty: dict[str, Fraction] = {}
        self.avg: dict[str, Fraction] = {}
        self.realized = Fraction(0)

    def apply(self, sym: str, side: str, qty: Fraction, price: Fraction, fee: Fraction) -> bool:
        held = self.qty.get(sym, Fraction(0))
        if side == "sell" and qty > held:
            return False
        if side == "buy" and qty * price + fee > self.cash:
            return False
        if side == "sell" and self.cash + qty * price - fee < 0:
            return False
        if side == "buy":
            self.avg[sym] = (held * self.avg.get(sym, Fraction(0)) + qty * price) / (held + qty)
            self.qty[sym] = held + qty
            self.cash -= qty * price + fee
        else:
            self.realized += (price - self.avg[sym]) * qty
            self.qty[sym] = held - qty
            self.cash += qty * price - fee
            if self.qty[sym] == 0:
                del self.qty[sym], self.avg[sym]
        return True


fills_strategy = st.lists(
    st.tuples(
        st.sampled_from(["BTC/USDT", "ETH/USDT", "SOL/USDT"]),
        st.sampled_from(["buy", "buy", "sell"]),
        st.integers(1, 5000).map(lambda n: Decimal(n) / 1000),  # 0.001 .. 5
        st.integers(100, 5_000_000).map(lambda n: Decimal(n) / 100),  # 1.00 .. 50000.00
        st.integers(0, 1000).map(lambda n: Decimal(n) / 100),  # fee 0 .. 10
    ),
    max_size=60,
)


def _fills(raw: list[tuple[str, str, Decimal, Decimal, Decimal]]) -> list[Fill]:
    return [
        Fill(f"f{i}", f"o{i}", sym, Side(side), qty, price, fee, at=float(i))
        for i, (sym, side, qty, price, fee) in enumerate(raw)
    ]


def _check_against_reference(book: PositionBook, ref: Reference) -> None:
    assert abs(Fraction(book.cash) - ref.cash) < CENT
    assert abs(Fraction(book.realized_pnl) - ref.realized) < CENT
    assert {s: Fraction(p.quantity) for s, p in book.positions.items()} == ref.qty
    for sym, pos in book.positions.items():
        # cost basis to the cent
        assert abs(Fraction(pos.avg_price) * ref.qty[sym] - ref.avg[sym] * ref.qty[sym]) < CENT


@given(fills_strategy)
@settings(max_examples=300, deadline=None)
def test_book_matches_reference_model(
    raw: list[tuple[str, str, Decimal, Decimal, Decimal]],
) -> None:
    book = PositionBook(Decimal("20000"))
    ref = Reference(Fraction(20000))
    for fill in _fills(raw):
        accepted = ref.apply(fill.symbol, fill.side.value, Fraction(fill.quantity),
                             Fraction(fill.price), Fraction(fill.fee))
        if accepted:
            book.apply(fill)
        else:
            with pytest.raises(InvalidFill):
                book.apply(fill)
    _check_against_reference(book, ref)


@given(fills_strategy)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ledger_on_disk_matches_reference_after_reopen(
    tmp_path: Path, raw: list[tuple[str, str, Decimal, Decimal, Decimal]]
) -> None:
    db = tmp_path / f"ledger-{uuid.uuid4().hex}.db"
    ref = Reference(Fraction(20000))
    ledger = Ledger(db, starting_cash=Decimal("20000"))
    ledger.open()
    fills = _fills(raw)
    accepted = [
        fill for fill in fills
        if ref.apply(fill.symbol, fill.side.value, Fraction(fill.quantity),
                     Fraction(fill.price), Fraction(fill.fee))
    ]
    # only the fills the reference accepts: a fill that makes the book impossible is
    # recorded too (a fact, then a halt: tests/portfolio/test_rel_state_venue_facts.py)
    ledger.record(accepted, now=0.0)
    results, events = ledger.record(accepted, now=0.0)  # resent: acknowledged, not re-applied
    assert events == []
    assert all(getattr(r, "duplicate", False) for r in results)
    ledger.close()
    reopened = Ledger(db, starting_cash=Decimal("1"))  # starting cash comes from the file
    reopened.open()
    try:
        _check_against_reference(reopened.book, ref)
        # and the projections equal a replay of the fill log
        replay = PositionBook(Decimal("20000"))
        for event in reopened.fills_since(0):
            replay.apply(event.fill)
        assert replay.cash == reopened.book.cash
        assert replay.positions == reopened.book.positions
    finally:
        reopened.close()


def _fill(i: int, side: str = "buy", sym: str = "BTC/USDT", qty: str = "0.01",
          price: str = "100") -> Fill:
    return Fill(f"fill-{i}", f"order-{i}", sym, Side(side), Decimal(qty), Decimal(price))


def test_ack_means_on_disk_and_duplicates_are_acknowledged_once(tmp_path: Path) -> None:
    rt = start_ledger(tmp_path)
    try:
        first = rt.ask("positions", RecordFill(_fill(1)))
        again = rt.ask("positions", RecordFill(_fill(1)))
        assert first == FillRecorded("fill-1", 1, duplicate=False)
        assert again == FillRecorded("fill-1", 1, duplicate=True)
        # read the file with a separate connection while the actor runs
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            count = db.execute("SELECT COUNT(*) FROM fills WHERE fill_id='fill-1'").fetchone()
        assert count == (1,)
        assert rt.ask("positions", HasOrder("order-1")) is True
        assert rt.ask("positions", HasOrder("order-2")) is False
        # selling more than held: a fact the venue made, recorded, and trading halts
        oversold = rt.ask("positions", RecordFill(_fill(2, side="sell", qty="5")))
        assert oversold == FillRecorded("fill-2", 2, duplicate=False)
        halts = [m for m in rt.ask("breaker", "get") if isinstance(m, HaltTrading)]
        assert len(halts) == 1 and "sold than held" in halts[0].reason, halts
    finally:
        rt.stop()


def test_group_commit_writes_waiting_fills_in_one_transaction(tmp_path: Path) -> None:
    GatedPositions.gate.clear()
    GatedPositions.holding.clear()
    rt = start_ledger(tmp_path, positions_factory=GatedPositions)
    try:
        rt.tell("positions", "hold")
        assert GatedPositions.holding.wait(10)
        futures = [rt.ask_future("positions", RecordFill(_fill(i))) for i in range(50)]
        assert not any(f.done() for f in futures)  # type: ignore[attr-defined]
        commits_before = rt.ask_future("positions", GetPortfolio())
        GatedPositions.gate.set()
        results = [f.get(timeout=10) for f in futures]
        assert [r.seq for r in results] == list(range(1, 51))
        commits_before.get(timeout=10)
        actor = rt.cell("positions").actor
        assert actor is not None
        assert actor.commits == 1  # type: ignore[attr-defined]
    finally:
        GatedPositions.gate.set()
        rt.stop()


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    rt = start_ledger(tmp_path, starting_cash=Decimal("10000000"))
    acks: dict[str, FillRecorded] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def producer(t: int) -> None:
        try:
            for i in range(150):
                fill = Fill(f"t{t}-{i}", f"t{t}-o{i}", f"S{t}/USDT", Side.BUY,
                            Decimal("0.5"), Decimal("10"))
                replies = [rt.ask("positions", RecordFill(fill))]
                if i % 10 == 0:  # the same fill again, as a retrying sender would
                    replies.append(rt.ask("positions", RecordFill(fill)))
                with lock:
                    acks[fill.fill_id] = replies[0]
                    assert all(r.seq == replies[0].seq for r in replies)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert len(acks) == 1200
        assert sorted(a.seq for a in acks.values()) == list(range(1, 1201))
        snap = rt.ask("positions", GetPortfolio())
        assert snap.cash == Decimal("10000000") - 1200 * Decimal("5")
        assert all(p.quantity == Decimal("75") for p in snap.positions.values())
        assert len(rt.ask("positions", GetTrades(limit=5000))) == 1200
    finally:
        rt.stop()


def test_snapshot_uses_marks_for_unrealised_pnl_equity_and_exposure(tmp_path: Path) -> None:
    rt = start_ledger(tmp_path, starting_cash=Decimal("1000"))
    try:
        rt.ask("positions", RecordFill(_fill(1, qty="2", price="100")))
        rt.ask("positions", RecordFill(_fill(2, side="sell", qty="1", price="120")))
        rt.tell("positions", MarkPrice("BTC/USDT", Decimal("90")))
        snap = rt.ask("positions", GetPortfolio())
        assert snap.cash == Decimal("920")
        assert snap.realized_pnl == Decimal("20")
        assert snap.unrealized_pnl == Decimal("-10")
        assert snap.equity == Decimal("1010")
        assert snap.gross_exposure == Decimal("90")
        assert snap.exposure_by_symbol == {"BTC/USDT": Decimal("90")}
    finally:
        rt.stop()


def test_state_survives_restart_of_the_actor_and_of_the_tree(tmp_path: Path) -> None:
    rt = start_ledger(tmp_path)
    try:
        for i in range(5):
            rt.ask("positions", RecordFill(_fill(i)))
        rt.restart_child("positions")
        snap = rt.ask("positions", GetPortfolio())
        assert snap.seq == 5
        assert snap.positions["BTC/USDT"].quantity == Decimal("0.05")
    finally:
        rt.stop()
    rt = start_ledger(tmp_path)
    try:
        assert rt.ask("positions", RecordFill(_fill(3))).duplicate is True
        assert rt.ask("positions", GetPortfolio()).seq == 5
    finally:
        rt.stop()
