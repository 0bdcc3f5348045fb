"""The files the backtest and optimise tests run on: a synthetic market's candle CSVs (one
file a symbol, whole or broken on purpose) and the shipped config, its state in a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.market.data import SyntheticMarket
from tests.support.bot_helpers import redirect_state, shipped_config, write_config

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


def with_a_bad_candle(directory: Path) -> Path:
    """Give ``BBB_USDT.csv`` in ``directory`` a high under its low at row 7 (line 8);
    return the file."""
    path = directory / "BBB_USDT.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    ts, _, _, _, close, volume = lines[7].split(",")
    lines[7] = ",".join((ts, "100", "90", "110", close, volume))  # high under low
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def with_a_gap(directory: Path) -> Path:
    """Take line 21 out of ``CCC_USDT.csv`` in ``directory``: row 20 comes two minutes after
    the row before; return the file."""
    path = directory / "CCC_USDT.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    del lines[20]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_in(directory: Path, change: Callable[[dict[str, Any]], None] | None = None
              ) -> Path:
    """Write the shipped config, its state files redirected under ``directory`` and changed
    by ``change`` (given the raw document), as ``directory/config.yaml``; return it."""
    raw = shipped_config()
    redirect_state(raw, directory)
    if change is not None:
        change(raw)
    return write_config(raw, directory / "config.yaml")
