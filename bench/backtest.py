"""Benchmark: ``botvisor backtest`` end to end, beside the live tree replaying the same data.

The data: ``--symbols`` (10) symbols x ``--rows`` (100,000) one-minute candles in the
replay's CSV layout (``SYMBOL.csv``, ``timestamp,open,high,low,close,volume``), made once
by a seeded generator (trends, ranges and volatility bursts around a base price, so that
both built-in strategies trade) and kept under ``--data`` (default
``/tmp/botvisor-bench-backtest/``; made again only when missing). The config: config.yaml
with the market on ``source: csv`` over that directory at full speed and every state file
in a temporary directory, the breaker's limits out of reach (as in bench/pipeline.py: a
trip would idle the tree, whose recovery timers run in wall time, for minutes); the
backtest and the tree read the same file.

1. The backtest, as a **subprocess** ``botvisor backtest --config C --data D --json``
   (imports, config, data loading and the run): ``backtest_candles_per_s`` = candles /
   the child's wall time, ``backtest_rss_mb`` = its peak RSS (``RUSAGE_CHILDREN``).
   ``backtest_startup_s``: the command's own ``startup_s`` (process start to the first
   step: imports, config and the whole data load). Beside it, ``backtest_two_steps_s``:
   the wall time of the same command with ``--until`` at the data's second candle, the
   fastest of three; the first of them fills the loader's cache when it is cold (its time
   is then ``backtest_cold_two_steps_s``).
2. Beside it, ``tree_replay_candles_per_s``: the tree built from the same config (as
   ``botvisor run`` builds it: ``load_config``, real actors, SQLite ledger and breaker)
   in this process, its market replaying the CSV at full speed for ``--tree-steps``
   (3,000) steps: candles / the time from the start of the tree until the market has
   emitted its last step and the pipeline has handled it (asked in data-flow order).
   The tree is slow enough that the whole data would take minutes; its rate is flat
   after the first steps, so a prefix measures it.

Before it times anything, the bench compiles the bytecode of ``actors/`` and
``supervisor/`` (``compileall``), as an installed package has it (pip compiles on
install): in an editable checkout where ``PYTHONDONTWRITEBYTECODE`` is set, as on this
machine, Python would otherwise compile each of the command's 140 modules from source
at every start (0.1-0.2 s of start-up the user's install does not have).

``machine_reference_s``: the fastest of three runs of a fixed pure-Python workload
(calls, float maths, dicts, Decimals, the mix of the backtest's loop), timed in this
process before anything else. Machines of the same kind differ in speed (the same
commit's backtest has taken 7.1 s on one and 13.2 s on another); the figure tells a
reader which kind of machine the others were measured on.

``backtest_vs_tree`` is their ratio. Targets: backtest >= 5x the tree, >= 100,000
candles/s, <= 300 MB, start-up <= 1.5 s. ``--quick`` uses 10 x 10,000 candles and 500
tree steps.
"""

from __future__ import annotations

import argparse
import compileall
import decimal
import json
import logging
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.execution.contract import GetExecutorStats  # noqa: E402
from actors.market.contract import GetMarketStats, MarketStats  # noqa: E402
from actors.market.history import CSV_HEADER, csv_name, format_row  # noqa: E402
from supervisor.host.config import load_config  # noqa: E402
from supervisor.runtime import Runtime  # noqa: E402

SEED = 19
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE_MS = 60_000
SYMBOLS = {
    "BTC/USDT": 30000.0, "ETH/USDT": 2000.0, "SOL/USDT": 50.0, "ADA/USDT": 0.5,
    "XRP/USDT": 0.6, "DOGE/USDT": 0.08, "BNB/USDT": 300.0, "AVAX/USDT": 20.0,
    "LINK/USDT": 7.0, "DOT/USDT": 5.0, "LTC/USDT": 70.0, "TRX/USDT": 0.1,
}


# -- the data ----------------------------------------------------------------------------------
REGIMES = (("trend_up", 0.0012, 0.003), ("range", 0.0, 0.004), ("trend_down", -0.0012, 0.003),
           ("burst", 0.0, 0.006), ("range", 0.0, 0.004))
REGIME_BARS = 120


def candles(base: float, rows: int, rng: random.Random) -> Iterator[tuple[float, ...]]:
    """``rows`` candles (o, h, l, c, v) of one symbol: regimes of ``REGIME_BARS`` bars
    (trends up and down, ranges, volatility bursts) on a log price pulled back towards
    ``base`` (so that a long series neither explodes nor vanishes)."""
    price = base
    offset = rng.randrange(len(REGIMES))
    volume = 2_000_000 / math.sqrt(1 + base / 1000)
    for i in range(rows):
        _, drift, vol = REGIMES[(i // REGIME_BARS + offset) % len(REGIMES)]
        drift += 0.002 * math.log(base / price)
        close = price * math.exp(drift + rng.gauss(0, vol))
        wiggle = abs(rng.gauss(0, vol / 2))
        yield (price, max(price, close) * (1 + wiggle), min(price, close) * (1 - wiggle),
               close, volume * rng.uniform(0.5, 1.5) * (3 if vol > 0.005 else 1))
        price = close


def make_data(root: Path, symbols: int, rows: int) -> Path:
    """The data directory for ``symbols`` x ``rows``, generated once (a ``complete`` marker
    is written last, so an interrupted generation is made again)."""
    directory = root / f"s{symbols}-r{rows}-seed{SEED}"
    if (directory / "complete").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    chosen = dict(list(SYMBOLS.items())[:symbols])
    chosen |= {f"X{i:03d}/USDT": 10.0 + i for i in range(symbols - len(chosen))}
    for n, (symbol, base) in enumerate(chosen.items()):
        rng = random.Random(SEED * 1_000_003 + n)
        lines = [",".join(CSV_HEADER)]
        lines.extend(format_row((START_MS + i * MINUTE_MS, *c))  # type: ignore[arg-type]
                     for i, c in enumerate(candles(base, rows, rng)))
        (directory / csv_name(symbol)).write_text("\n".join(lines) + "\n")
    (directory / "complete").write_text("")
    return directory


# As bench/pipeline.py: the breaker's limits out of reach, so that neither side stops
# trading (the tree's recovery timers run in wall time, the backtest's in candle time: a
# trip would idle the tree for minutes and the backtest for two candles).
BREAKER_OUT_OF_REACH: dict[str, Any] = {
    "drawdown": {"max_percent": 90.0}, "daily_loss": {"max_percent": 90.0},
    "consecutive_losses": {"max_losses": 1_000_000}, "volatility": {"max_percent": 1e9},
    "liquidity": {"min_volume": 0.0}, "resources": {"max_cpu_percent": 1e9, "max_rss_mb": 1e9},
}


def make_config(data: Path, state: Path, steps: int) -> Path:
    """config.yaml with the market replaying ``data`` at full speed for ``steps`` steps,
    the breaker's limits out of reach and every state file under ``state``; alerts to the
    log only."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["runtime"]["state_dir"] = str(state)
    raw["runtime"]["log_level"] = "warning"
    for node in _nodes(raw["tree"]):
        settings = node.get("settings")
        if not isinstance(settings, dict):
            continue
        for key in ("database", "path", "fallback_file", "clock_file"):
            if isinstance(settings.get(key), str):
                settings[key] = str(state / Path(settings[key]).name)
        if node["name"] == "breaker":  # its triggers run on every sample, never trip
            settings.update(BREAKER_OUT_OF_REACH)
        if node["name"] == "market":
            settings.update(source="csv", csv_dir=str(data), speed=1e12, max_steps=steps)
            settings.pop("crash_at_bar", None)
            settings.pop("seed", None)
    path = state / "config.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in raw.items() if not k.startswith("x-")},
                                   sort_keys=False))
    return path


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for child in node.get("children", ()):
        out.append(child)
        out.extend(_nodes(child))
    return out


# -- the backtest, as a subprocess -----------------------------------------------------------
def botvisor() -> list[str]:
    found = Path(sys.executable).with_name("botvisor")
    return [str(found)] if found.exists() else [sys.executable, "-m", "supervisor.host.cli"]


def backtest(config: Path, data: Path, until: str | None = None) -> tuple[float, dict[str, Any]]:
    """Run ``botvisor backtest``; its wall time and its ``--json`` document."""
    command = [*botvisor(), "backtest", "--config", str(config), "--data", str(data), "--json"]
    if until is not None:
        command += ["--until", until]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} exited {done.returncode}:\n"
                         f"{done.stderr.strip()[-2000:]}")
    return elapsed, json.loads(done.stdout)


def compile_bytecode() -> None:
    """The package's bytecode, as an install writes it (see the module docstring)."""
    for package in ("actors", "supervisor"):
        compileall.compile_dir(ROOT / package, quiet=2)


def backtest_side(config: Path, data: Path, candles: int) -> dict[str, Any]:
    compile_bytecode()
    cold = not any((data / ".botvisor-cache").glob("*.bin"))
    second = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START_MS / 1000 + 60))
    starts = [backtest(config, data, until=second)[0] for _ in range(3)]
    result: dict[str, Any] = {"backtest_two_steps_s": min(starts[1:] if cold else starts)}
    if cold:
        result["backtest_cold_two_steps_s"] = starts[0]
    elapsed, document = backtest(config, data)
    # The command's own figure (process start to the first step) when it reports one.
    result["backtest_startup_s"] = document.get("startup_s", result["backtest_two_steps_s"])
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result |= {
        "backtest_candles": document.get("candles", candles),
        "backtest_seconds": elapsed,
        "backtest_candles_per_s": document.get("candles", candles) / elapsed,
        "backtest_rss_mb": rss_kb / 1024,
        "backtest_trades": document.get("trades"),
    }
    return result


# -- the tree, in this process ---------------------------------------------------------------
def drain(rt: Runtime) -> None:
    """Ask the pipeline in data-flow order: each reply means that actor has handled all that
    was sent to it before (and what it sent on is queued downstream)."""
    from pykka.messages import ProxyGetAttr

    rt.ask("scanner", "candidates", timeout=60)
    rt.ask("evaluator", ProxyGetAttr(attr_path=("signals",)), timeout=60)
    rt.ask("exits", ProxyGetAttr(attr_path=("requests",)), timeout=60)
    rt.ask("executor", GetExecutorStats(), timeout=60)


def tree_side(config: Path) -> dict[str, Any]:
    bot, spec = load_config(config)
    logging.basicConfig(level=logging.ERROR)
    rt = Runtime(error_handler=bot.error_handler(), ask_timeout=60,
                 monitor_interval=bot.runtime.monitor_interval)
    began = time.perf_counter()
    rt.start(spec)
    try:
        while True:
            stats: MarketStats = rt.ask("market", GetMarketStats(), timeout=60)
            if stats.finished:
                break
            time.sleep(0.02)
        drain(rt)
        elapsed = time.perf_counter() - began
        orders = rt.ask("executor", GetExecutorStats(), timeout=60)
    finally:
        rt.stop()
    return {"tree_candles": stats.bars, "tree_steps": stats.steps, "tree_seconds": elapsed,
            "tree_replay_candles_per_s": stats.bars / elapsed,
            "tree_orders": orders.orders}


# -- the machine -------------------------------------------------------------------------------
def _reference_workload() -> float:
    """A fixed pure-Python workload: the mix of the backtest's loop in miniature."""
    table: dict[int, float] = {}
    total = 0.0
    for i in range(200_000):
        x = math.log(1.0 + (i % 97) / 100.0)
        table[i % 31] = x
        total += _square(x)
    money = decimal.Decimal("0")
    for i in range(50_000):
        money += decimal.Decimal(repr(1.0 + i / 7.0)) * decimal.Decimal("0.001")
    return total + float(money)


def _square(x: float) -> float:
    return x * x


def machine_reference_s() -> float:
    """The fastest of three runs of :func:`_reference_workload`."""
    times = []
    for _ in range(3):
        began = time.perf_counter()
        _reference_workload()
        times.append(time.perf_counter() - began)
    return min(times)


# -- the run -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.data) if args.data else Path(tempfile.gettempdir()) / \
        "botvisor-bench-backtest"
    t0 = time.perf_counter()
    data = make_data(root, args.symbols, args.rows)
    result: dict[str, Any] = {"symbols": args.symbols, "rows": args.rows,
                              "data": str(data), "data_ready_s": time.perf_counter() - t0,
                              "machine_reference_s": machine_reference_s()}
    with tempfile.TemporaryDirectory(prefix="bv-bench-backtest-") as tmp:
        config = make_config(data, Path(tmp), args.tree_steps)
        if not args.tree_only:
            result |= backtest_side(config, data, args.symbols * args.rows)
        if not args.backtest_only:
            result |= tree_side(config)
    if "backtest_candles_per_s" in result and "tree_replay_candles_per_s" in result:
        result["backtest_vs_tree"] = (result["backtest_candles_per_s"]
                                      / result["tree_replay_candles_per_s"])
    return result


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}" if value < 100 else f"{value:,.0f}{unit}"
    return f"{value:,}{unit}"


def render(r: dict[str, Any]) -> str:
    rows = [
        ("data", f"{r['symbols']} symbols x {r['rows']:,} 1m candles", r["data"]),
        ("backtest (end to end)", _fmt(r.get("backtest_candles_per_s"), " candles/s"),
         f"{_fmt(r.get('backtest_candles'))} candles in {_fmt(r.get('backtest_seconds'), ' s')}"
         f", {_fmt(r.get('backtest_trades'))} trades; target >= 100,000/s"),
        ("backtest peak RSS", _fmt(r.get("backtest_rss_mb"), " MB"), "target <= 300 MB"),
        ("backtest start-up", _fmt(r.get("backtest_startup_s"), " s"),
         "imports, config, data (warm cache) to the first step; target <= 1.5 s"),
        ("backtest of two steps", _fmt(r.get("backtest_two_steps_s"), " s"),
         "the whole command with --until at the second candle"
         + (f"; {_fmt(r['backtest_cold_two_steps_s'], ' s')} with a cold cache"
            if "backtest_cold_two_steps_s" in r else "")),
        ("tree replay (baseline)", _fmt(r.get("tree_replay_candles_per_s"), " candles/s"),
         f"{_fmt(r.get('tree_candles'))} candles in {_fmt(r.get('tree_seconds'), ' s')} "
         "through the live tree at full speed"),
        ("backtest / tree", _fmt(r.get("backtest_vs_tree"), "x"), "target >= 5x"),
        ("machine reference", f"{r['machine_reference_s']:.3f} s",
         "a fixed pure-Python workload (smaller is a faster machine)"),
    ]
    width = max(len(name) for name, _, _ in rows)
    vwidth = max(len(value) for _, value, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>{vwidth}}  {note}" for name, value, note in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="10 x 10,000 candles, 500 steps")
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000, help="candles per symbol")
    parser.add_argument("--tree-steps", type=int, default=3_000,
                        help="steps the live tree replays")
    parser.add_argument("--data", default=None, help="where the generated data is kept")
    parser.add_argument("--backtest-only", action="store_true")
    parser.add_argument("--tree-only", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.tree_steps = 10_000, 500
    result = run(args)
    print(json.dumps(result) if args.json else render(result))


if __name__ == "__main__":
    main()
