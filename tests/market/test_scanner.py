"""The scanner ranks symbols by volatility and quote volume over its window, with the
filters from config; its per-symbol windows give the figures a pass over the bars gives."""

from __future__ import annotations

import math
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.market.contract import Bar, Bars, ScannedBars
from actors.market.ranking import RankingRules, Scanner
from actors.market.scanner import ScannerActor
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.position_helpers import Inbox

closes = st.lists(st.floats(min_value=0.01, max_value=1e5, allow_nan=False), min_size=2,
                  max_size=80)


@settings(max_examples=200, deadline=None)
@given(closes, st.integers(min_value=2, max_value=60))
def test_a_window_gives_the_volatility_and_volume_of_its_last_bars(
    prices: list[float], size: int
) -> None:
    scanner = Scanner(RankingRules(window_bars=size))
    for i, close in enumerate(prices):
        scanner.push([Bar("X", 60.0 * i, close, close, close, close, float(i + 1))])
    window = scanner.windows["X"]
    last = prices[-size:]
    returns = [math.log(b / a) for a, b in pairwise(last)]
    mean = sum(returns) / len(returns)
    expected = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns)) * 100
    assert math.isclose(window.volatility_pct(), expected, rel_tol=1e-7, abs_tol=1e-9)
    volumes = [float(i + 1) * c for i, c in enumerate(prices)][-size:]
    assert sum(window.quote) == sum(volumes)
    assert window.close == prices[-1]


def test_candidates_are_the_most_volatile_liquid_symbols_within_the_filters() -> None:
    settings_ = ScannerActor.Settings(window_bars=10, cycle_bars=10, top=2,
                                      min_quote_volume=1_000.0, min_volatility_pct=0.05,
                                      max_volatility_pct=5.0, max_price=50_000.0)
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("evaluator", factory=Inbox),
        ChildSpec("scanner", factory=lambda: ScannerActor(settings_)),
    )))
    # per symbol: closes swing +-swing % around price (1-bar log returns of about twice
    # that, in percent, is the volatility), volume per bar
    shapes = {"CALM": (0.01, 100.0, 1e3), "LIVELY": (1.0, 100.0, 1e3),
              "WILD": (2.0, 100.0, 1e3), "CRAZY": (9.0, 100.0, 1e3),
              "THIN": (2.0, 100.0, 1.0), "DEAR": (2.0, 60_000.0, 1e3)}
    try:
        for i in range(10):
            bars = []
            for symbol, (swing, price, volume) in shapes.items():
                close = price * (1 + swing / 100 * (1 if i % 2 else -1))
                bars.append(Bar(symbol, 60.0 * i, close, close, close, close, volume))
            rt.tell("scanner", Bars(tuple(bars)))
        ranked = rt.ask("scanner", "candidates").symbols
        seen = rt.ask("evaluator", "get")
    finally:
        rt.stop()
    # CALM is too calm, CRAZY too wild, THIN too thin, DEAR too dear; WILD beats LIVELY
    assert ranked == ("WILD", "LIVELY")
    assert isinstance(seen[-1], ScannedBars)
    assert seen[-1].candidates == frozenset({"WILD", "LIVELY"})
    assert all(isinstance(m, ScannedBars) for m in seen) and len(seen) == 10
