"""The executor's ``serial`` setting (a lockstep replay's, docs/backtesting.md, "Parity with
the live tree"): a signal is decided only once no order and no fill is out, so it is sized
on a ledger that holds every earlier fill, as a backtest's decision is.

Real actors: the executor, the breaker, the paper exchange and the position actor, whose
writes the test holds back (``HeldPositions``: ``RecordFill`` waits for an event). The
same tree without ``serial`` places the second entry while the first fill is held
(``test_executor_entries.py``).
"""

from __future__ import annotations

import threading
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from actors.portfolio.contract import GetPortfolio, PortfolioSnapshot
from tests.support.bot_helpers import wait_until
from tests.support.executor_helpers import (
    WAIT,
    held,
    placed,
    wait_held,
)
from tests.support.executor_tree import executor_tree, three_buys_the_first_held

EIGHT = Decimal("0.00000001")


def test_serial_decides_the_next_entry_only_once_the_fill_before_is_in_the_ledger(
    tmp_path: Path,
) -> None:
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, release, holding, serial=True, max_open_positions=3)
    try:
        a, b, c = three_buys_the_first_held(rt, holding)
        rt.tell("executor", b)
        rt.tell("executor", c)
        wait_held(rt, b, c)  # AAA's fill is out: both wait, in their order
        assert placed(rt, b) is None and placed(rt, c) is None
        release.set()
        second = wait_until(lambda: placed(rt, b), timeout=WAIT, what="BBB's order")
        third = wait_until(lambda: placed(rt, c), timeout=WAIT, what="CCC's order")
        assert held(rt) == ()
        # each sized on the ledger's cash once the fills before it were in: 98 % of it
        first = placed(rt, a)
        assert first is not None
        cash = Decimal(1000)
        for result, price in ((first, 100), (second, 50), (third, 20)):
            fill = result.fills[0]
            if price != 100:
                assert fill.quantity == (cash * Decimal("0.98") / price).quantize(
                    EIGHT, ROUND_DOWN)
            cash -= fill.quantity * fill.price + fill.fee
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert snap.cash == cash
    finally:
        release.set()
        rt.stop()
