"""Benchmark: the live feed over the websocket, from the venue sending a closed candle to the
subscriber seeing it, and the candles per second it ingests; beside it, the CSV replay.

The venue is the test suite's fake Binance (REST klines) and its kline stream
(``FakeBinanceStream``), run in a child process (so its sending does not share the bot's
GIL; ``perf_counter`` is the same monotonic clock in both processes). The bot is a tree of
real actors: the market (``source: ccxt``, ``transport: ws``, ``--symbols`` (100) symbols
on 1m candles: the ``WsStreamer`` worker, its ccxt.pro venue in a child process as the
market runs it), a **recorder subscriber in place
of the scanner** (the evaluator offers no hook, so the strategy's input is measured where
the scanner would take it: the moment a ``Bars`` reaches the subscriber's handler), and
sinks for the positions, breaker and alerts peers.

Fast-forwarded history: the market's resume file says each symbol's last delivered candle
was ten days ago, so every candle the venue streams after it is closed by the clock (the
tracker's rule: its end has passed) and is delivered at once; each simulated minute is one
closed candle per symbol. The venue sends candles one after the other at an even pace
(symbols in turn, minute after minute), noting ``perf_counter`` just before each send;
latency = the moment the recorder's handler sees the candle - that moment.

1. ``feed_p50_ms`` / ``feed_p99_ms``: at ``--rate`` (1,000) candles/s for ``--seconds``
   (5) seconds after a warm-up. Beside it, ``burst_p99_ms``: all the symbols' candles of a
   minute sent at once (as a venue does at the close), ``--bursts`` times.
2. ``feed_candles_per_s``: the rate is raised step by step (``--ramp``, each step for
   ``--step-seconds``); a step is *sustained* when its p99 <= ``--p99-bound-ms`` (5) and
   the recorder has every candle within ``--backlog-bound-ms`` (50) of the last send. The
   figure is the highest rate up to which every step was sustained.
3. ``replay_candles_per_s``: the market with ``source: csv`` (``--replay-bars`` bars for
   each symbol, at full speed) into the same recorder: bars seen / time from start to the
   last one.

Targets: p99 <= 5 ms at 100 symbols on 1m candles; >= 5,000 candles/s. ``--quick`` runs a
shorter version of each part.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.market.contract import Bars  # noqa: E402
from actors.market.feed import MarketActor  # noqa: E402
from actors.market.live_feed import write_resume  # noqa: E402
from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec  # noqa: E402
from supervisor.backoff import Backoff  # noqa: E402
from supervisor.host.gc_freeze import freeze_startup_objects  # noqa: E402

MINUTE_MS = 60_000
HISTORY_DAYS = 10
DEFAULT_RAMP = (1_000, 2_000, 5_000, 10_000, 20_000)
QUICK_RAMP = (1_000, 5_000, 10_000)
# the threads whose CPU time per candle is measured: the websocket worker's loop, the market
CPU_THREADS = {"ws": "market-ws", "market": "botvisor:market"}


def bases(n: int) -> list[str]:
    return [f"B{i:03d}" for i in range(n)]


def candle(at: int, i: int) -> tuple[int, str, str, str, str, str]:
    price = 100.0 + i + (at // MINUTE_MS) % 50 * 0.01
    return (at, f"{price:.2f}", f"{price + 0.5:.2f}", f"{price - 0.5:.2f}",
            f"{price + 0.25:.2f}", "12.5")


# -- the venue, in a child process -------------------------------------------------------------
def venue_process(conn: Connection, n: int) -> None:
    """Serve the fake venue; on ``("send", first_ms, count, rate, burst)`` send ``count``
    closed candles (symbols in turn from minute ``first_ms``) at ``rate`` per second (or a
    minute's worth at once every ``n / rate`` seconds with ``burst``), and answer the send
    moment of each."""
    from tests.support.fake_venues import FakeBinance, FakeBinanceStream

    names = bases(n)
    ids = [b + "USDT" for b in names]
    venue = FakeBinance(extra_markets=tuple((b, "USDT") for b in names))
    stream = FakeBinanceStream()
    freeze_startup_objects()
    conn.send((venue.url, stream.url))
    try:
        while True:
            command = conn.recv()
            if command[0] == "stop":
                return
            if command[0] == "subscribed":
                stream.wait_subscribed(ids[-1], timeout=60)
                conn.send(True)
                continue
            _, first, count, rate, burst = command
            sent: list[float] = []
            gap = (n if burst else 1) / rate
            due = time.perf_counter()
            for k in range(count):
                if not burst or k % n == 0:
                    late = due - time.perf_counter()
                    if late > 0:
                        time.sleep(late)
                    due += gap
                i, minute = k % n, k // n
                c = candle(first + minute * MINUTE_MS, i)
                sent.append(time.perf_counter())
                stream.push(ids[i], c, closed=True)
            conn.send(sent)
    finally:
        stream.close()
        venue.close()


# -- the bot -----------------------------------------------------------------------------------
class Recorder(SupervisedActor):
    """The subscriber: notes when each bar reaches its handler; ``"take"`` hands them over."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, float, float]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            now = time.perf_counter()
            self.seen.extend([(b.symbol, b.at, now) for b in message.bars])
            return None
        if message == "take":
            out, self.seen = self.seen, []
            return out
        if message == "count":
            return len(self.seen)
        return super().on_receive(message)


class Sink(SupervisedActor):
    """A peer that takes anything and keeps nothing."""

    def on_receive(self, message: Any) -> Any:
        return None


def start_tree(market: MarketActor.Settings) -> Runtime:
    rt = Runtime(ask_timeout=30, monitor_interval=0)
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=(
        ChildSpec("alerts", factory=Sink), ChildSpec("positions", factory=Sink),
        ChildSpec("breaker", factory=Sink), ChildSpec("recorder", factory=Recorder),
        ChildSpec("market", factory=lambda: MarketActor(market)))))
    return rt


def feed_settings(directory: Path, venue_url: str, stream_url: str, symbols: Sequence[str]
                  ) -> MarketActor.Settings:
    api = venue_url + "/api/v3"
    return MarketActor.Settings.model_validate({
        "source": "ccxt", "exchange": "binance", "symbols": list(symbols), "timeframe": "1m",
        "transport": "ws", "poll_interval": 1.0, "subscribers": ["recorder"],
        "clock_file": str(directory / "market_feed.json"),
        "ccxt_options": {
            "urls": {"api": {"public": api, "private": api, "ws": {"spot": stream_url}}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                        "fetchMargins": False, "defaultType": "spot"},
            "timeout": 10_000}})


def thread_cpu(prefix: str) -> float:
    """The CPU seconds (user + system) of this process's threads whose name starts with
    ``prefix`` (the kernel's per-thread times: a figure the machine's load hardly moves)."""
    ids = {t.native_id for t in threading.enumerate()
           if t.name.startswith(prefix) and t.native_id is not None}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


def children_cpu(exclude: int) -> float:
    """The CPU seconds of this process's descendants but ``exclude`` (the venue) and its
    own: the websocket worker's venue child (and the forkserver it is forked from)."""
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid == exclude or proc.ppid() == exclude:
                continue
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class FeedRun:
    """The venue child, the tree, and the next minute to send."""

    def __init__(self, directory: Path, n: int) -> None:
        self.n = n
        self.symbols = [b + "/USDT" for b in bases(n)]
        self.cpu_us: dict[str, float] = {}  # the last send's CPU per candle, by thread
        self.conn, child = mp.get_context("spawn").Pipe()
        self.proc = mp.get_context("spawn").Process(target=venue_process, args=(child, n),
                                                    daemon=True)
        self.proc.start()
        venue_url, stream_url = self.conn.recv()
        start = (int(time.time() * 1000) // MINUTE_MS - HISTORY_DAYS * 1440) * MINUTE_MS
        self.next = start + MINUTE_MS
        write_resume(directory / "market_feed.json", "binance", "1m",
                     dict.fromkeys(self.symbols, start / 1000))
        self.rt = start_tree(feed_settings(directory, venue_url, stream_url, self.symbols))
        self.conn.send(("subscribed",))
        self.conn.recv()

    def send(self, count: int, rate: float, *, burst: bool = False
             ) -> tuple[list[float], float]:
        """Send ``count`` candles (whole minutes) at ``rate``; their latencies (ms) and the
        time from the last send to the recorder holding every one (ms)."""
        minutes = max(1, count // self.n)
        count = minutes * self.n
        cpu = {n: thread_cpu(p) for n, p in CPU_THREADS.items()}
        cpu["ws_child"] = children_cpu(self.proc.pid or 0)
        self.conn.send(("send", self.next, count, rate, burst))
        first = self.next
        self.next += minutes * MINUTE_MS
        sent: list[float] = self.conn.recv()
        deadline = time.monotonic() + 30
        while self.rt.ask("recorder", "count") < count and time.monotonic() < deadline:
            time.sleep(0.001)
        seen: list[tuple[str, float, float]] = self.rt.ask("recorder", "take")
        index = {s: i for i, s in enumerate(self.symbols)}
        latencies = []
        for symbol, at, t in seen:
            k = round((at * 1000 - first) / MINUTE_MS) * self.n + index[symbol]
            if 0 <= k < count:
                latencies.append((t - sent[k]) * 1000)
        if len(latencies) != count:
            raise RuntimeError(f"the recorder saw {len(latencies)} of {count} candles")
        drain = (max(t for _, _, t in seen) - sent[-1]) * 1000
        self.cpu_us = {n: (thread_cpu(p) - cpu[n]) / count * 1e6
                       for n, p in CPU_THREADS.items()}
        self.cpu_us["ws_child"] = (children_cpu(self.proc.pid or 0) - cpu["ws_child"]) \
            / count * 1e6
        return latencies, drain

    def close(self) -> None:
        self.rt.stop()
        self.conn.send(("stop",))
        self.proc.join(10)


# -- the replay baseline -----------------------------------------------------------------------
def replay(directory: Path, n: int, bars: int) -> dict[str, Any]:
    csv_dir = directory / "csv"
    csv_dir.mkdir()
    start = 1_767_225_600_000
    for i, base in enumerate(bases(n)):
        rows = ["timestamp,open,high,low,close,volume"]
        for k in range(bars):
            c = candle(start + k * MINUTE_MS, i)
            rows.append(",".join(str(v) for v in c))
        (csv_dir / f"{base}_USDT.csv").write_text("\n".join(rows) + "\n")
    rt = start_tree(MarketActor.Settings.model_validate({
        "source": "csv", "csv_dir": str(csv_dir), "speed": 1e12, "crash_at_bar": None,
        "subscribers": ["recorder"], "clock_file": None}))
    began = time.perf_counter()
    try:
        total = n * bars
        deadline = time.monotonic() + 60
        while rt.ask("recorder", "count") < total and time.monotonic() < deadline:
            time.sleep(0.002)
        seen: list[tuple[str, float, float]] = rt.ask("recorder", "take")
    finally:
        rt.stop()
    elapsed = max(t for _, _, t in seen) - began
    return {"replay_candles": len(seen), "replay_seconds": elapsed,
            "replay_candles_per_s": len(seen) / elapsed}


# -- the run -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.symbols
    result: dict[str, Any] = {"symbols": n, "rate": args.rate,
                              "subscriber": "a recorder actor in place of the scanner"}
    with tempfile.TemporaryDirectory(prefix="bv-bench-feed-", dir=args.dir) as tmp:
        feed = FeedRun(Path(tmp), n)
        try:
            feed.send(3 * n, min(args.rate, 1_000))  # warm-up: connections, caches
            if not args.no_gc_freeze:  # as `botvisor run` does once the tree is up
                result["gc_frozen_objects"] = freeze_startup_objects()
            lat, drain = feed.send(int(args.rate * args.seconds), args.rate)
            result |= {f"{name}_cpu_us_per_candle": us for name, us in feed.cpu_us.items()}
            result |= {"feed_candles": len(lat), "feed_p50_ms": percentile(lat, 50),
                       "feed_p99_ms": percentile(lat, 99), "feed_max_ms": max(lat),
                       "feed_mean_ms": statistics.fmean(lat), "feed_drain_ms": drain}
            burst: list[float] = []
            for _ in range(args.bursts):
                got, _ = feed.send(n, n * 10, burst=True)
                burst += got
            result |= {"burst_p50_ms": percentile(burst, 50),
                       "burst_p99_ms": percentile(burst, 99)}
            steps, sustained, capacity = [], 0.0, 0.0
            for rate in args.ramp:
                got, drain = feed.send(int(rate * args.step_seconds), rate)
                p99 = percentile(got, 99)
                kept_up = drain <= args.backlog_bound_ms
                ok = kept_up and p99 <= args.p99_bound_ms
                steps.append({"rate": rate, "p50_ms": percentile(got, 50), "p99_ms": p99,
                              "drain_ms": drain, "kept_up": kept_up, "sustained": ok})
                if all(s["sustained"] for s in steps):
                    sustained = rate
                if all(s["kept_up"] for s in steps):
                    capacity = rate
            result |= {"ramp": steps, "feed_candles_per_s": sustained,
                       "feed_capacity_candles_per_s": capacity,
                       "bounds": {"p99_ms": args.p99_bound_ms,
                                  "backlog_ms": args.backlog_bound_ms}}
        finally:
            feed.close()
        result |= replay(Path(tmp), n, args.replay_bars)
    result["met"] = {"feed_p99_ms": result["feed_p99_ms"] <= 5.0,
                     "feed_candles_per_s": result["feed_candles_per_s"] >= 5_000}
    return result


def report(r: dict[str, Any]) -> str:
    """The figures as a table, with the ramp."""
    met = r["met"]
    lines = [f"feed benchmark: {r['symbols']} symbols on 1m candles over the websocket "
             f"(ccxt.pro, fake Binance in a child process); subscriber: {r['subscriber']}"]
    rows = [
        ("venue -> subscriber p50", f"{r['feed_p50_ms']:.3f} ms", "",
         f"{r['rate']:,.0f} candles/s, {r['feed_candles']:,} candles, mean "
         f"{r['feed_mean_ms']:.3f} ms"),
        ("venue -> subscriber p99", f"{r['feed_p99_ms']:.3f} ms",
         f"<= 5 ms  {'met' if met['feed_p99_ms'] else 'MISSED'}",
         f"max {r['feed_max_ms']:.3f} ms"),
        ("CPU per candle, ws loop", f"{r['ws_cpu_us_per_candle']:.1f} us", "",
         f"the worker's thread (the market actor's: {r['market_cpu_us_per_candle']:.1f} us; "
         f"the venue's child process: {r['ws_child_cpu_us_per_candle']:.1f} us), at the "
         "measured rate"),
        ("  a minute's close at once", f"{r['burst_p99_ms']:.3f} ms", "",
         f"p99 when all {r['symbols']} candles of a minute are sent together (p50 "
         f"{r['burst_p50_ms']:.3f} ms)"),
        ("sustained ingest", f"{r['feed_candles_per_s']:,.0f} /s",
         f">= 5,000  {'met' if met['feed_candles_per_s'] else 'MISSED'}",
         f"p99 <= {r['bounds']['p99_ms']:g} ms and every candle seen within "
         f"{r['bounds']['backlog_ms']:g} ms of the last send"),
        ("  capacity", f"{r['feed_capacity_candles_per_s']:,.0f} /s", "",
         "highest rate whose candles were all seen within that bound, at any latency"),
        ("CSV replay (baseline)", f"{r['replay_candles_per_s']:,.0f} /s", "",
         f"{r['replay_candles']:,} bars at full speed into the same subscriber"),
    ]
    lines += [f"{name:<28}{figure:>14}   {target:<18}{notes}"
              for name, figure, target, notes in rows]
    lines.append(f"\n{'ramp rate':>10}{'p50 ms':>9}{'p99 ms':>9}{'drain ms':>10}")
    for s in r["ramp"]:
        verdict = "" if s["sustained"] else "p99 over bound" if s["kept_up"] else "fell behind"
        lines.append(f"{s['rate']:>10,.0f}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}"
                     f"{s['drain_ms']:>10.1f}   {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a shorter run of each part")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1_000.0, help="candles/s, measured step")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured step length")
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--ramp", default=",".join(str(r) for r in DEFAULT_RAMP),
                        help="offered rates, candles/s, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=2.0)
    parser.add_argument("--p99-bound-ms", type=float, default=5.0)
    parser.add_argument("--backlog-bound-ms", type=float, default=50.0)
    parser.add_argument("--dir", default=None,
                        help="where the temporary directory goes (the market's resume file "
                             "is written, with fsync, after every delivery)")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="do not freeze the objects alive after the warm-up out of the "
                             "collector's walks (botvisor run freezes them)")
    parser.add_argument("--replay-bars", type=int, default=300, help="bars per symbol")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.bursts, args.step_seconds = 2.0, 5, 1.0
        args.ramp, args.replay_bars = ",".join(str(r) for r in QUICK_RAMP), 100
    args.ramp = tuple(float(x) for x in args.ramp.split(",") if x.strip())
    if args.symbols < 1 or args.rate <= 0 or args.seconds <= 0 or not args.ramp:
        parser.error("--symbols, --rate and --seconds must be positive; --ramp not empty")
    logging.basicConfig(level=logging.ERROR)
    result = run(args)
    print(json.dumps(result) if args.json else report(result))


if __name__ == "__main__":
    main()
