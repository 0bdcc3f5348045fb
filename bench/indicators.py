"""Benchmark: what an indicator update costs, talipp beside ferro_ta, and the runner core.

1. Per indicator (SMA, EMA, ATR, RSI, Bollinger bands), the cost of one update: talipp's
   ``add`` (the baseline) and ferro_ta's streaming ``update``, each the best of ``--repeat``
   runs over the same ``--values`` candles of a seeded random walk, the method bound to a
   local name, run side by side in this process. ``ratio`` is talipp / ferro_ta.
2. ``runner_us_per_candle``: the runner core (:class:`~actors.strategies.runner.Runner`)
   with both built-in strategies (on ferro_ta) over 10 symbols, nothing held and every
   symbol a candidate, the best of ``--repeat`` runs; beside it ``runner_empty_us``, the
   same runner with no strategy (its own cost per candle).

This is why the built-ins use ferro_ta (docs/strategies.md, "Indicators"); no target.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ferro_ta  # noqa: E402
from talipp import indicators as tal  # noqa: E402

from actors.market.contract import Bar  # noqa: E402
from actors.strategies.builtin import MeanReversion, MomentumBreakout  # noqa: E402
from actors.strategies.contract import Signal  # noqa: E402
from actors.strategies.runner import Runner, StrategyFault, StrategySpec  # noqa: E402

SEED = 7
SYMBOLS = 10


def walk(n: int, symbol: str = "X/USDT", seed: int = SEED) -> list[Bar]:
    """``n`` one-minute candles of a random walk around 100."""
    rng = random.Random(seed)
    price, out = 100.0, []
    for i in range(n):
        close = price * (1 + rng.gauss(0, 0.003))
        spread = abs(rng.gauss(0, 0.002)) * close
        out.append(Bar(symbol, 60.0 * i, price, max(price, close) + spread,
                       min(price, close) - spread, close, 1000.0))
        price = close
    return out


def best(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _talipp(make: Callable[[], Any], bars: list[Bar], *, candle: bool) -> Callable[[], None]:
    closes = [b.close for b in bars]

    def run() -> None:
        add = make().add
        for value in bars if candle else closes:
            add(value)
    return run


def _ferro(make: Callable[[], Any], bars: list[Bar], *, candle: bool) -> Callable[[], None]:
    closes = [b.close for b in bars]

    def run() -> None:
        update = make().update
        if candle:
            for b in bars:
                update(b.high, b.low, b.close)
        else:
            for c in closes:
                update(c)
    return run


INDICATORS: tuple[tuple[str, Callable[[], Any], Callable[[], Any], bool], ...] = (
    ("SMA(30)", lambda: tal.SMA(30), lambda: ferro_ta.StreamingSMA(30), False),
    ("EMA(20)", lambda: tal.EMA(20), lambda: ferro_ta.StreamingEMA(20), False),
    ("ATR(20)", lambda: tal.ATR(20), lambda: ferro_ta.StreamingATR(20), True),
    ("RSI(14)", lambda: tal.RSI(14), lambda: ferro_ta.StreamingRSI(14), False),
    ("BB(30, 2)", lambda: tal.BB(30, 2), lambda: ferro_ta.StreamingBBands(30, 2.0, 2.0), False),
)


class _Count:
    """The runner's sink: counts signals."""

    def __init__(self) -> None:
        self.signals = 0

    def signal(self, signal: Signal) -> bool:
        self.signals += 1
        return True

    def fault(self, fault: StrategyFault) -> None:
        raise AssertionError(fault)


def runner_cost(steps: int, repeat: int, specs: tuple[StrategySpec, ...]) -> float:
    """µs per candle of the runner with ``specs`` over ``SYMBOLS`` symbols."""
    series = [walk(steps, f"S{i}/USDT", SEED + i) for i in range(SYMBOLS)]
    rows = [list(step) for step in zip(*series, strict=True)]
    candidates = frozenset(f"S{i}/USDT" for i in range(SYMBOLS))

    def run() -> None:
        runner = Runner(specs, entry_timeout_bars=20)
        sink = _Count()
        for row in rows:
            runner.on_candles(row, candidates, {}, sink)
    return best(run, repeat) / (steps * SYMBOLS) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=20_000, help="candles per indicator run")
    parser.add_argument("--steps", type=int, default=20_000, help="runner steps (10 symbols)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is kept")
    parser.add_argument("--quick", action="store_true", help="2,000 values and steps, 3 runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.quick:
        args.values, args.steps, args.repeat = 2000, 2000, 3
    bars = walk(args.values)
    rows: dict[str, dict[str, float]] = {}
    for name, talipp_make, ferro_make, candle in INDICATORS:
        t = best(_talipp(talipp_make, bars, candle=candle), args.repeat) / len(bars) * 1e6
        f = best(_ferro(ferro_make, bars, candle=candle), args.repeat) / len(bars) * 1e6
        rows[name] = {"talipp_us": t, "ferro_ta_us": f, "ratio": t / f}
    both = (StrategySpec("momentum", MomentumBreakout, MomentumBreakout.Params()),
            StrategySpec("mean_reversion", MeanReversion, MeanReversion.Params()))
    figures: dict[str, Any] = {
        "indicators": rows,
        "runner_us_per_candle": runner_cost(args.steps, args.repeat, both),
        "runner_empty_us": runner_cost(args.steps, args.repeat, ()),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{'indicator':<12}{'talipp µs':>12}{'ferro_ta µs':>14}{'ratio':>8}")
    for name, row in rows.items():
        print(f"{name:<12}{row['talipp_us']:>12.2f}{row['ferro_ta_us']:>14.2f}"
              f"{row['ratio']:>7.1f}x")
    print(f"runner core, both built-ins, {SYMBOLS} symbols: "
          f"{figures['runner_us_per_candle']:.2f} µs a candle "
          f"(with no strategy: {figures['runner_empty_us']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
