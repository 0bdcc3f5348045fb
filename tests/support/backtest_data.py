"""Candle CSV files for the backtest and optimise tests: a synthetic market, one file a symbol."""

from __future__ import annotations

from pathlib import Path

from actors.market.data import SyntheticMarket

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
STEPS = 1500
SYMBOLS = {"AAA/USDT": 10.0, "BBB/USDT": 200.0, "CCC/USDT": 3.0}


def write_data(directory: Path, steps: int = STEPS) -> Path:
    """Write ``steps`` one-minute candles of each of :data:`SYMBOLS` from :data:`T0` (a
    crash at bar 900) as ``<BASE>_<QUOTE>.csv`` files in ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    market = SyntheticMarket(SYMBOLS, seed=5, start=float(T0), crash_at_bar=900)
    rows: dict[str, list[str]] = {s: [] for s in SYMBOLS}
    for _ in range(steps):
        for b in market.step():
            rows[b.symbol].append(f"{int(b.at * 1000)},{b.open!r},{b.high!r},{b.low!r},"
                                  f"{b.close!r},{b.volume!r}")
    for symbol, lines in rows.items():
        (directory / f"{symbol.replace('/', '_')}.csv").write_text(
            "timestamp,open,high,low,close,volume\n" + "\n".join(lines) + "\n",
            encoding="utf-8")
    return directory
