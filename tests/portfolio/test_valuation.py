"""The position actor's incremental valuation gives, after any sequence of fills and new
marks, exactly the figures a from-scratch pass over the book gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.common.messages import Fill, Side
from actors.portfolio.book import PositionBook
from actors.portfolio.valuation import Valuer

pytestmark = pytest.mark.unit

SYMBOLS = ("A", "B", "C", "D")
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=4)
quantities = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("50"), places=8)
steps = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(SYMBOLS), st.booleans(), quantities, prices),
    st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), prices),
), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_incremental_valuation_equals_a_full_pass(script: list[tuple]) -> None:
    book = PositionBook(Decimal("1000000"), allow_short=True)
    marks: dict[str, Decimal] = {}
    valuer = Valuer()
    for n, step in enumerate(script):
        if step[0] == "fill":
            _, symbol, buy, qty, price = step
            book.apply(Fill(f"f{n}", f"c{n}", symbol, Side.BUY if buy else Side.SELL, qty,
                            price, Decimal("0"), float(n)), check=False)
        else:
            _, symbol, price = step
            marks[symbol] = Decimal(price)  # a new object, as the actor stores each mark
        got = valuer.value(book.positions, marks)
        assert got.market_value == book.market_value(marks)
        assert got.unrealized == book.unrealized(marks)
        assert got.gross_exposure == book.gross_exposure(marks)
        assert set(got.positions) == set(book.positions)
        for symbol, pos in book.positions.items():
            view = got.positions[symbol]
            assert (view.quantity, view.avg_price) == (pos.quantity, pos.avg_price)
            assert got.exposure[symbol] == abs(marks.get(symbol, pos.avg_price) * pos.quantity)
