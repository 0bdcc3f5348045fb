"""The scanner's pure core: a cycle counts market steps (one ``push`` each, however many
bars it carries), the ranking keeps the most volatile liquid symbols within the filters,
and a symbol with too short a history is not ranked."""

from __future__ import annotations

import pytest

from actors.market.contract import Bar
from actors.market.ranking import RankingRules, Scanner
from tests.support.purity import impure_imports

pytestmark = pytest.mark.unit

# per symbol: closes swing +-swing % around price, volume per bar
SHAPES = {"CALM": (0.01, 100.0, 1e3), "LIVELY": (1.0, 100.0, 1e3), "WILD": (2.0, 100.0, 1e3),
          "CRAZY": (9.0, 100.0, 1e3), "THIN": (2.0, 100.0, 1.0), "DEAR": (2.0, 60_000.0, 1e3)}
RULES = RankingRules(window_bars=10, cycle_bars=10, top=2, min_quote_volume=1_000.0,
                     min_volatility_pct=0.05, max_volatility_pct=5.0, max_price=50_000.0)


def step(i: int, shapes: dict[str, tuple[float, float, float]]) -> tuple[Bar, ...]:
    bars = []
    for symbol, (swing, price, volume) in shapes.items():
        close = price * (1 + swing / 100 * (1 if i % 2 else -1))
        bars.append(Bar(symbol, 60.0 * i, close, close, close, close, volume))
    return tuple(bars)


def test_candidates_are_ranked_anew_every_cycle_of_market_steps() -> None:
    scanner = Scanner(RULES)
    seen = [scanner.push(step(i, SHAPES)) for i in range(25)]
    assert seen[:9] == [frozenset()] * 9  # six bars a step: still the first cycle
    assert seen[9] == frozenset({"WILD", "LIVELY"})
    assert scanner.ranked == ("WILD", "LIVELY")  # best first
    assert (scanner.cycles, scanner.steps) == (2, 25)


def test_the_filters_and_the_order() -> None:
    scanner = Scanner(RULES.model_copy(update={"top": 6}))
    for i in range(10):
        scanner.push(step(i, SHAPES))
    # CALM is too calm, CRAZY too wild, THIN too thin, DEAR too dear
    assert scanner.ranked == ("WILD", "LIVELY")
    looser = Scanner(RULES.model_copy(update={"top": 6, "max_volatility_pct": 50.0,
                                              "max_price": None}))
    for i in range(10):
        looser.push(step(i, SHAPES))
    # volatility times the log of the quote volume: DEAR, as wild as WILD, trades more
    assert looser.ranked == ("CRAZY", "DEAR", "WILD", "LIVELY")


def test_a_symbol_needs_half_a_window_of_bars_to_be_ranked() -> None:
    scanner = Scanner(RULES.model_copy(update={"cycle_bars": 1}))
    late = {"LATE": SHAPES["WILD"]}
    for i in range(10):
        scanner.push(step(i, {"LIVELY": SHAPES["LIVELY"], **(late if i >= 5 else {})}))
        if i == 8:  # four bars of LATE: fewer than five
            assert scanner.ranked == ("LIVELY",)
    assert scanner.ranked == ("LATE", "LIVELY")  # five bars of LATE at the tenth step


def test_the_core_reads_no_clock_file_or_process() -> None:
    assert impure_imports("actors.market.ranking") == set()
