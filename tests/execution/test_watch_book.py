"""WatchBook, pure: the held positions' watches through a step's bars, the exit requests
they make (the exits actor's and the backtest's one copy), and when a watch is dropped."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import pytest

from actors.execution.contract import ExitRequest
from actors.execution.exit_rules import ExitPlan, ExitRules
from actors.execution.watch_book import WatchBook
from actors.market.contract import Bar

pytestmark = pytest.mark.unit

RULES = ExitRules(stop_loss_pct=10, take_profit_pct=50, trailing_pct=25,
                  trailing_activation_pct=12.5, time_stop_seconds=None,
                  repeat_after_seconds=300)


class Held(NamedTuple):
    quantity: Decimal
    avg_price: Decimal


def bar(symbol: str, at: float, low: float, high: float | None = None) -> Bar:
    return Bar(symbol, at, low, high if high is not None else low, low, low, 1.0)


def test_a_stop_fires_on_a_held_symbols_bar_as_an_exit_request_of_the_exits_ids() -> None:
    book = WatchBook(RULES)
    held = {"A": Held(Decimal(1), Decimal(100))}
    requests, changed = book.on_bars([bar("A", 60.0, 100.0), bar("B", 60.0, 1.0)], held, 1,
                                     lambda _: None)
    assert requests == [] and changed and set(book.watches) == {"A"}
    requests, _ = book.on_bars([bar("A", 120.7, 90.0)], held, 1, lambda _: None)
    assert requests == [ExitRequest("exit:stop_loss:A:120", "A", "stop_loss", 90.0, 120.7)]
    assert requests[0] == ExitRequest.on(bar("A", 120.7, 90.0), "stop_loss")


def test_the_plan_is_read_when_a_watch_opens_and_its_stop_replaces_the_percentage() -> None:
    asked: list[str] = []

    def plan_of(symbol: str) -> ExitPlan:
        asked.append(symbol)
        return ExitPlan(stop=95.0)
    book = WatchBook(RULES)
    held = {"A": Held(Decimal(1), Decimal(100))}
    book.on_bars([bar("A", 60.0, 100.0)], held, 1, plan_of)
    requests, _ = book.on_bars([bar("A", 120.0, 95.0)], held, 1, plan_of)
    assert asked == ["A"]  # once, as the watch opened
    assert [r.reason for r in requests] == ["stop_loss"]  # at 95, not at 90


def test_a_watch_whose_symbol_is_not_held_is_dropped_when_the_ledger_moves() -> None:
    book = WatchBook(RULES)
    held = {"A": Held(Decimal(1), Decimal(100))}
    book.on_bars([bar("A", 60.0, 100.0)], held, 1, lambda _: None)
    _, changed = book.on_bars([bar("A", 120.0, 100.0)], {}, 1, lambda _: None)
    assert "A" in book.watches and not changed  # the same seq: positions have not moved
    _, changed = book.on_bars([bar("A", 180.0, 100.0)], {}, 2, lambda _: None)
    assert book.watches == {} and changed
