"""A hypothesis state machine drives the order book (actors/execution/orders.py) with any
event for any of a few client order ids: what the table allows moves the order, anything
else raises and leaves it where it was. Whatever the sequence, a client order id reaches
PLACING at most once and an order in a terminal phase stays there."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

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
)
from actors.venues.contract import PlaceOrder

pytestmark = pytest.mark.unit

COIDS = ("bv-a", "bv-b", "bv-c")
SYMBOLS = {"bv-a": "AAA/USDT", "bv-b": "BBB/USDT", "bv-c": "AAA/USDT"}


def _record(coid: str) -> OrderRecord:
    symbol = SYMBOLS[coid]
    order = PlaceOrder(coid, symbol, Side.SELL, Decimal(1), reduce_only=True)
    return OrderRecord(coid, symbol, 1, ExitRequest("s-" + coid, symbol, "stop_loss", 1.0, 1.0),
                       Placing(order, False, True, None))


class OrderBookMachine(RuleBasedStateMachine):
    """The book against a model that is only the table itself, read in the other
    direction: the phases each order went through."""

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook()
        self.model: dict[str, OrderPhase | None] = dict.fromkeys(COIDS)
        self.placed: Counter[str] = Counter()
        self.ended: dict[str, OrderPhase] = {}  # the first terminal phase each order reached

    def _moved(self, coid: str, event: OrderEvent, new: bool) -> None:
        before = self.model[coid]
        try:
            if new:
                self.book.add(_record(coid), event)
            else:
                self.book.apply(coid, event)
        except IllegalTransition:
            # the table has no such move, or there is no record to move
            assert (before, event) not in TABLE or (before is None and not new)
            assert self.book.phase(coid) is before  # refused: nothing moved
            return
        assert (before, event) in TABLE and (before is not None or new)
        after = self.model[coid] = TABLE[before, event]
        assert self.book.phase(coid) is after
        if after is OrderPhase.PLACING:
            self.placed[coid] += 1
        if after in TERMINAL:
            self.ended.setdefault(coid, after)

    @rule(coid=st.sampled_from(COIDS), event=st.sampled_from(list(OrderEvent)))
    def an_event(self, coid: str, event: OrderEvent) -> None:
        self._moved(coid, event, new=False)

    @rule(coid=st.sampled_from(COIDS), event=st.sampled_from(list(OrderEvent)))
    def a_new_record(self, coid: str, event: OrderEvent) -> None:
        """A record for ``coid`` given to the book (a new order, or one replacing its
        record: the event must be allowed from the phase it has)."""
        self._moved(coid, event, new=True)

    @rule(coid=st.sampled_from(COIDS), data=st.data())
    def an_allowed_event(self, coid: str, data: st.DataObject) -> None:
        """Most random events are refused: this one picks one the table allows, so the
        orders go far into the table."""
        phase = self.model[coid]
        events = sorted(e for p, e in TABLE if p is phase)
        if events:
            self._moved(coid, data.draw(st.sampled_from(events)), new=phase is None)

    @invariant()
    def a_client_order_id_is_placed_at_most_once(self) -> None:
        assert all(n <= 1 for n in self.placed.values()), self.placed

    @invariant()
    def a_terminal_phase_is_final(self) -> None:
        for coid, phase in self.ended.items():
            assert self.book.phase(coid) is phase

    @invariant()
    def the_books_answers_match_the_model(self) -> None:
        assert {c: self.book.phase(c) for c in COIDS} == self.model
        live = {c for c, p in self.model.items() if p is not None and p not in SETTLED}
        assert {r.coid for r in self.book.placing()} \
            == {c for c, p in self.model.items() if p is OrderPhase.PLACING}
        assert {r.coid for r in self.book.unresolved()} <= live
        assert len(self.book) == sum(p is not None for p in self.model.values())
        assert sum(self.book.counts().values()) == len(self.book)


TestOrderBookMachine = OrderBookMachine.TestCase
TestOrderBookMachine.settings = settings(max_examples=300, stateful_step_count=40,
                                         deadline=None)
