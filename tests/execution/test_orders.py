"""An order's transition table and the order book (actors/execution/orders.py), pure: no
runtime."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from actors.common.messages import Side
from actors.execution.contract import ExitRequest
from actors.execution.orders import (
    SETTLED,
    TABLE,
    TERMINAL,
    IllegalTransition,
    OrderBook,
    OrderEvent,
    OrderPhase,
    OrderRecord,
    Placing,
    allowed,
    next_phase,
)
from actors.venues.contract import PlaceOrder

pytestmark = pytest.mark.unit

P = OrderPhase
E = OrderEvent


def _order(coid: str, symbol: str = "BTC/USDT", side: Side = Side.BUY) -> OrderRecord:
    placing = Placing(PlaceOrder(coid, symbol, side, Decimal(1), reduce_only=side is Side.SELL),
                      False, side is Side.SELL, None, Decimal(100))
    return OrderRecord(coid, symbol, placing=placing)


def _check(coid: str, symbol: str = "BTC/USDT", seq: int = 1) -> OrderRecord:
    return OrderRecord(coid, symbol, seq, ExitRequest("s-" + coid, symbol, "stop_loss", 1.0, 1.0))


@pytest.mark.parametrize(("phase", "event", "target"), [
    (None, E.CHECK, P.CHECKING_LEDGER),
    (P.CHECKING_LEDGER, E.NOT_IN_LEDGER, P.CHECKING_VENUE),
    (P.CHECKING_LEDGER, E.FOUND, P.DUPLICATE),
    (P.CHECKING_VENUE, E.FOUND, P.DUPLICATE),
    (P.CHECKING_VENUE, E.NEW, P.CHECKED_NEW),
    (P.CHECKING_VENUE, E.STILL_OPEN, P.OPEN),
    (P.CHECKING_LEDGER, E.UNSURE, P.UNCHECKED),
    (P.CHECKED_NEW, E.SEND, P.PLACING),
    (P.CHECKED_NEW, E.DECIDED, None),
    (P.CHECKING_VENUE, E.HANDED_OVER, None),
    (None, E.SEND, P.PLACING),
    (P.PLACING, E.FILLED, P.FILLED),
    (P.PLACING, E.REJECTED, P.REJECTED),
    (P.PLACING, E.STILL_OPEN, P.OPEN),
    (P.PLACING, E.NO_REPLY, P.UNKNOWN),
    (P.UNKNOWN, E.LOOK_UP, P.LOOKING_UP),
    (P.UNKNOWN, E.LOOKUP_FAILED, P.UNKNOWN),
    (P.LOOKING_UP, E.LOOKUP_FAILED, P.UNKNOWN),
    (P.LOOKING_UP, E.NOT_FOUND, P.NOT_PLACED),
    (P.LOOKING_UP, E.FILLED, P.FILLED),
    (P.OPEN, E.LOOK_UP, P.OPEN_LOOKING_UP),
    (P.OPEN_LOOKING_UP, E.LOOKUP_FAILED, P.OPEN),
    (P.OPEN_LOOKING_UP, E.STILL_OPEN, P.OPEN),
    (P.OPEN_LOOKING_UP, E.REJECTED, P.REJECTED),
    (None, E.ADOPT, P.UNKNOWN),
    (None, E.FOLLOW_OPEN, P.OPEN),
    (P.NOT_PLACED, E.FOLLOW_OPEN, P.OPEN),
    (P.DUPLICATE, E.FOLLOW_OPEN, P.OPEN),
])
def test_the_table_moves_each_phase_by_its_events(
        phase: OrderPhase | None, event: OrderEvent, target: OrderPhase | None) -> None:
    assert next_phase("bv-1", phase, event) is target
    assert allowed(phase, event)


@pytest.mark.parametrize(("phase", "event"), [
    (None, E.FILLED),  # a result for an order never sent
    (P.PLACING, E.SEND),  # never sent twice
    (P.PLACING, E.NOT_FOUND),  # an order out is not looked up
    (P.OPEN_LOOKING_UP, E.NOT_FOUND),  # once open, "no such order" is a failed lookup
    (P.UNKNOWN, E.FILLED),  # a result comes from a lookup out
    (P.CHECKING_LEDGER, E.NEW),  # the venue is asked after the ledger
    (P.CHECKING_LEDGER, E.SEND),
    (P.FILLED, E.FOLLOW_OPEN),
    (P.REJECTED, E.SEND),
    (P.DUPLICATE, E.SEND),
])
def test_an_event_the_table_does_not_allow_raises(
        phase: OrderPhase | None, event: OrderEvent) -> None:
    assert not allowed(phase, event)
    with pytest.raises(IllegalTransition, match=event.value):
        next_phase("bv-1", phase, event)


def test_terminal_phases_have_no_way_out_and_placing_is_entered_only_from_a_new_signal() -> None:
    assert {P.FILLED, P.REJECTED} == TERMINAL
    assert all(phase not in TERMINAL for phase, _ in TABLE)
    assert {phase for (phase, _), target in TABLE.items() if target is P.PLACING} \
        == {None, P.CHECKED_NEW}
    assert TERMINAL <= SETTLED
    assert all(target is P.OPEN for (phase, _), target in TABLE.items()
               if phase in SETTLED)  # only the venue's listing moves a settled order on


def test_no_path_leads_from_placing_back_to_where_an_order_is_sent_from() -> None:
    """A client order id reaches PLACING at most once: nothing after it leads back to no
    record or to CHECKED_NEW (the phases SEND leaves)."""
    reached: set[OrderPhase] = set()
    todo = [P.PLACING]
    while todo:
        phase = todo.pop()
        for (source, _), target in TABLE.items():
            if source is phase and target is not None and target not in reached:
                reached.add(target)
                todo.append(target)
    assert None not in {t for (s, _), t in TABLE.items() if s in reached | {P.PLACING}}
    assert P.CHECKED_NEW not in reached and P.PLACING not in reached


def test_every_order_can_end_settled_or_handed_over() -> None:
    """From every phase a path leads to a settled phase or to no record (handed over, or
    decided without an order)."""
    ends: set[OrderPhase | None] = {*SETTLED, None}
    can_end = set(ends)
    grew = True
    while grew:
        grew = False
        for (source, _), target in TABLE.items():
            if target in can_end and source not in can_end:
                can_end.add(source)
                grew = True
    assert can_end == {*OrderPhase, None}


def test_every_phase_is_reached_and_every_event_used() -> None:
    assert set(TABLE.values()) - {None} == set(OrderPhase)
    assert {event for _, event in TABLE} == set(OrderEvent)


def test_the_book_moves_an_order_through_a_lost_reply_to_its_fill() -> None:
    book = OrderBook()
    record = book.add(_order("bv-1"), E.SEND)
    assert record.phase is P.PLACING and book.placing() == [record]
    assert book.busy("BTC/USDT") and not book.busy("ETH/USDT")
    book.apply("bv-1", E.NO_REPLY)
    assert book.unresolved() == [record] and book.placing() == []
    assert not book.busy("BTC/USDT") and not book.resolving()  # nothing out: a lookup due
    assert book.unsettled_symbols() == {"BTC/USDT"}
    book.apply("bv-1", E.LOOK_UP)
    assert book.busy("BTC/USDT") and book.resolving()
    book.apply("bv-1", E.FILLED)
    assert book.phase("bv-1") is P.FILLED and book.get("bv-1") is record
    assert book.unresolved() == [] and book.unsettled_symbols() == set()
    assert book.handled("bv-1") and book.counts() == {"filled": 1}
    with pytest.raises(IllegalTransition, match="bv-1: send is not allowed from filled"):
        book.apply("bv-1", E.SEND)


def test_a_client_order_id_is_placed_once_even_after_its_record_is_dropped() -> None:
    book = OrderBook()
    book.add(_check("bv-1"), E.CHECK)
    book.apply("bv-1", E.NOT_IN_LEDGER)
    book.apply("bv-1", E.NEW)
    assert not book.handled("bv-1")  # checked new: decided again
    book.add(_order("bv-1"), E.SEND)
    assert book.phase("bv-1") is P.PLACING
    book.apply("bv-1", E.REJECTED)
    book.add(_order("bv-2"), E.SEND)
    with pytest.raises(IllegalTransition, match="bv-2: send is not allowed from placing"):
        book.add(_order("bv-2"), E.SEND)  # a record replacing it moves from its phase
    book.add(_check("bv-3"), E.CHECK)
    book.apply("bv-3", E.HANDED_OVER)
    assert book.get("bv-3") is None and not book.handled("bv-3")
    book.add(_order("bv-3"), E.SEND)
    book.apply("bv-3", E.NO_REPLY)
    book.apply("bv-3", E.LOOK_UP)
    book.apply("bv-3", E.NOT_FOUND)
    book.add(_order("bv-3"), E.FOLLOW_OPEN)  # listed open after all: followed, not placed
    book.apply("bv-3", E.LOOK_UP)
    book.apply("bv-3", E.LOOKUP_FAILED)
    assert book.phase("bv-3") is P.OPEN
    with pytest.raises(IllegalTransition, match="bv-1: send is not allowed from rejected"):
        book.add(_order("bv-1"), E.SEND)


def test_an_event_for_an_order_the_book_does_not_have_raises() -> None:
    with pytest.raises(IllegalTransition, match="bv-9: look_up is not allowed from no record"):
        OrderBook().apply("bv-9", E.LOOK_UP)


def test_the_books_questions_about_checks_and_sales() -> None:
    book = OrderBook()
    book.add(_check("bv-1", "ETH/USDT", seq=4), E.CHECK)
    book.add(_order("bv-2", "BTC/USDT", Side.SELL), E.SEND)
    book.add(_order("bv-3", "SOL/USDT"), E.SEND)
    assert [r.coid for r in book.checks()] == ["bv-1"] and book.busy("ETH/USDT")
    assert book.has_sale("BTC/USDT") and not book.has_sale("SOL/USDT")
    assert not book.handled("bv-4") and book.handled("bv-1")
    book.apply("bv-1", E.UNSURE)
    assert book.checks() == [] and not book.busy("ETH/USDT") and book.handled("bv-1")
    assert book.count(P.PLACING) == 2 and book.count(P.UNCHECKED) == 1
    assert {r.coid for r in book} == {"bv-1", "bv-2", "bv-3"} and len(book) == 3
    assert [r.coid for r in book.in_phase(P.UNCHECKED, P.PLACING)] == ["bv-2", "bv-3", "bv-1"]


def test_the_diagram_in_the_docs_draws_the_table() -> None:
    """docs/state-machines.md ("Orders") draws every move of the table and no other."""
    page = (Path(__file__).parents[2] / "docs" / "state-machines.md").read_text()
    block = page.split("## Orders", 1)[1].split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = set()
    for source, target, event in re.findall(r"^\s*(\S+) --> (\S+?): (\w+)", block, re.M):
        drawn.add((None if source == "[*]" else P(source), E(event),
                   None if target == "[*]" else P(target)))
    assert drawn == {(phase, event, target) for (phase, event), target in TABLE.items()}
