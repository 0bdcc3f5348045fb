"""Benchmark: tick-to-order latency through the trading pipeline, and the tick rate it sustains.

The tree has the shipped tree's shape and real actors: the breaker, the ledger subtree
(the position actor with its SQLite ledger; its three sources only with ``--sources``),
the paper exchange (its own SQLite record), and the pipeline (market, scanner, evaluator,
executor, exits). Every file lives in a temporary directory that is removed afterwards.
Alerts go to a sink; there is no event log. Only settings differ from ``config.yaml``, so
that the strategies trade often and the breaker never trips (see ``tree``).

Feeding: the market actor's own timer is limited to one synthetic step (``max_steps=1``);
after it the bench tells the market ``FeedBars`` (the market's entry for outside feeds:
validation, then ``Bars`` to the scanner and exits (the exchange reads the bars the market
publishes), and marks and samples to the position actor and the breaker) on a schedule,
from the main thread. A *tick* is one bar
of one symbol, drawn from a ``SyntheticMarket`` over ``--symbols`` symbols (the same
generator as the market's, continuing its first step); by default each tick is its own
``FeedBars`` (``--batch`` groups ticks per message), made before the step's clock starts.
A tick's time is the moment the schedule says it arrives (``perf_counter``); when the
feeder is late, the lateness counts. Once the tree is up the bench freezes the start-up
objects out of the garbage collector's walks, as ``botvisor run`` does
(``runtime.gc_freeze``; ``--no-gc-freeze`` leaves them), and sets the feeder's timer slack
to 1 ns (Linux's default of 50 us would make every sleep of the feeder that much late:
the load generator's error, counted as the pipeline's).

Orders: the exchange is the paper exchange with one addition, it notes ``perf_counter``
and the client order id when a ``PlaceOrder`` reaches its handler. Client order ids are
derived from signal ids (``strategy:symbol:bar time:side``, or ``exit:reason:symbol:bar
time``), so each order is matched to the tick that caused it by recomputing the ids of
that symbol's latest ticks. Latency = order arrival - tick time.

1. ``tick_to_order_p50_ms`` / ``tick_to_order_p99_ms``: at ``--rate`` (1,000) ticks per
   second over ``--symbols`` (100) symbols for ``--seconds`` (10) seconds, after a warm-up
   that fills the strategies' windows. Next to the p99, a 95 % distribution-free interval
   for it (order statistics; with some 250 orders its upper end lies beyond the largest
   latency seen: one run's p99 is a rough figure, compare several).
2. ``sustained_ticks_per_s``: the offered rate is raised step by step (``--ramp``), each
   step for ``--step-seconds``. A step *keeps up* when the feeder kept its schedule (its
   last tick went out less than ``--lag-bound-ms`` late) and nothing piled up: once the
   last tick is out, asking market, scanner, evaluator, exits and executor in data-flow
   order takes less than ``--backlog-bound-ms``, and no mailbox (sampled every 10 ms)
   ever held more messages than the offered rate brings in that time (at least 50). It
   is *sustained* when it also keeps its p99 tick-to-order (strategy orders, as in 1)
   within ``--p99-bound-ms``. ``sustained_ticks_per_s`` is the highest rate up to which
   every step was sustained; ``capacity_ticks_per_s`` the highest up to which every step
   kept up, whatever the latency. A step that would end either is run once more (against
   noise); the ramp stops at a rate that falls behind twice, or before a step that would
   end after ``--budget-seconds`` (50) from the tree's start (``ramp_cut_short_at``).

First of all, without the tree, a bare loop sleeps to the feeder's schedule for
``--baseline-seconds`` (3) and reports how late it woke (``machine_sleep_late_*``): the
machine's own noise, in every figure after. On this project's 2-core VM the host stalls the
guest for 1-3 ms about every half second, which no code in the process can avoid.

Orders caused by the exits actor (tick -> market -> exits -> executor) are matched and
reported apart (``exit_tick_to_order_*``); the headline counts the strategy orders (tick ->
market -> scanner -> evaluator -> executor -> exchange). Each step also reports the process
CPU time per tick (all threads; under the GIL one core is the ceiling, so 1e6 /
cpu_us_per_tick bounds the rate), CPU per tick by actor thread (psutil), the mean time per
message in each actor's handler (the runtime's handler histogram), and the deepest mailbox
seen.

Targets: p99 <= 2 ms at 1,000 ticks/s over 100 symbols; sustained >= 10,000 ticks/s.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import gc
import importlib
import json
import logging
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
from pykka.messages import ProxyGetAttr

from actors.execution.contract import ExecutorStats, GetExecutorStats, client_order_id
from actors.execution.executor import ExecutorActor
from actors.execution.exits import ExitsActor
from actors.market.contract import Bar, FeedBars, GetMarketStats, MarketStats
from actors.market.data import SyntheticMarket
from actors.market.feed import MarketActor
from actors.market.scanner import ScannerActor
from actors.portfolio.positions import PositionActor
from actors.portfolio.sources import (
    PaperWalletSource,
    PositionsLogSource,
    SourceSettings,
    TradeManagerSource,
)
from actors.risk.breaker import BreakerActor
from actors.risk.contract import BreakerGate
from actors.strategies.evaluator import EvaluatorActor
from actors.venues.contract import PlaceOrder
from actors.venues.paper_exchange import PaperExchange
from supervisor import ChildSpec, Runtime, Strategy, SupervisedActor, SupervisorSpec
from supervisor.host.gc_freeze import freeze_startup_objects

TARGETS = {"tick_to_order_p99_ms": "<= 2 at 1,000 ticks/s, 100 symbols",
           "sustained_ticks_per_s": ">= 10,000"}
SEED = 7
_PR_SET_TIMERSLACK, _PR_GET_TIMERSLACK = 29, 30  # prctl(2)
CASH = Decimal("10000000")
PIPELINE = ("market", "scanner", "evaluator", "executor", "exits", "exchange", "positions",
            "breaker")
STRATEGIES = ("momentum", "mean_reversion")
EXIT_REASONS = ("stop_loss", "take_profit", "trailing_stop", "time_stop")
DEFAULT_RAMP = (500, 1_000, 1_500, 2_000, 3_000, 5_000, 7_000, 10_000, 14_000, 20_000,
                28_000, 40_000)


# -- the tree ------------------------------------------------------------------------------------
class _Sink(SupervisedActor):
    """Stands in for the alerts actor: takes what it is told, keeps nothing."""

    def on_receive(self, message: Any) -> Any:
        return None


@dataclass(frozen=True, slots=True)
class Arrival:
    """A PlaceOrder as it reached the exchange's handler."""

    at: float  # perf_counter
    client_order_id: str
    symbol: str
    side: str


class StampingExchange(PaperExchange):
    """The paper exchange, noting when each PlaceOrder reaches it (nothing else differs)."""

    def __init__(self, settings: PaperExchange.Settings, arrivals: list[Arrival]) -> None:
        super().__init__(settings)
        self.arrivals = arrivals

    def on_receive(self, message: Any) -> Any:
        if type(message) is PlaceOrder:
            self.arrivals.append(Arrival(time.perf_counter(), message.client_order_id,
                                         message.symbol, message.side.value))
        return super().on_receive(message)


def symbol_prices(count: int) -> dict[str, float]:
    """``count`` symbols, prices spread log-evenly from 0.05 to 50,000."""
    return {f"S{i:03d}/USDT": round(0.05 * 10 ** (6 * i / max(1, count - 1)), 6)
            for i in range(count)}


SHARED: str | None = "pipeline"  # the shared thread (as in config.yaml)


def tree(directory: Path, symbols: dict[str, float], arrivals: list[Arrival], *,
         scanner_cycle: int, sources: bool) -> SupervisorSpec:
    """The shipped tree's shape with bench settings: a third of the symbols are candidates
    (the shipped scanner keeps 4 of 6), any number of small positions may be open, exits
    are tight so positions turn over, and the breaker's limits are out of reach (its
    triggers still run on every sample, as they would).

    The strategies sell what they opened (the evaluator keeps an entry's owner until its
    fill shows in the position snapshot); the tight exits make positions turn over faster,
    so orders keep coming."""
    breaker = BreakerActor.Settings(
        database=str(directory / "breaker.db"),
        drawdown={"max_percent": 90.0},
        daily_loss={"max_percent": 90.0},
        consecutive_losses={"max_losses": 1_000_000},
        volatility={"max_percent": 1e9},
        liquidity={"min_volume": 0.0},
        resources={"max_cpu_percent": 1e9, "max_rss_mb": 1e9},
    )
    source_names = ("trade_manager", "paper_wallet", "positions_log") if sources else ()
    positions = PositionActor.Settings(
        database=str(directory / "ledger.db"), starting_cash=CASH, reconcile_interval=3600,
        sources=source_names)
    exchange = PaperExchange.Settings(database=str(directory / "paper_exchange.db"))
    market = MarketActor.Settings(
        symbols=symbols, seed=SEED, crash_at_bar=None, bar_seconds=60.0, speed=60_000.0,
        max_steps=1, clock_file=str(directory / "market_clock.json"))  # one step from its
        # own timer, then only what the bench feeds
    scanner = ScannerActor.Settings(
        window_bars=10, cycle_bars=scanner_cycle, top=max(1, len(symbols) // 3),
        min_quote_volume=0.0, min_volatility_pct=0.0, max_volatility_pct=1000.0)
    evaluator = EvaluatorActor.Settings(strategies=(
        {"class": "momentum", "params": {"lookback": 20, "exit_lookback": 10}},
        {"class": "mean_reversion", "params": {"window": 30, "k": 2.0}},
    ))
    executor = ExecutorActor.Settings(
        max_open_positions=len(symbols), max_position_pct=Decimal("0.5"),
        max_exposure_pct=Decimal("80"))
    exits = ExitsActor.Settings(  # tight: positions turn over faster (see above)
        stop_loss_pct=3.0, take_profit_pct=3.0, trailing_pct=2.0, trailing_activation_pct=1.0,
        time_stop_seconds=60 * 60.0)

    def source(cls: type[Any], filename: str) -> ChildSpec:
        ss = SourceSettings(path=str(directory / filename), starting_cash=CASH)
        return ChildSpec(filename.split(".", maxsplit=1)[0], factory=lambda: cls(ss))

    ledger_children = [ChildSpec("positions", factory=lambda: PositionActor(positions),
                                 shutdown=10)]
    if sources:
        ledger_children += [source(TradeManagerSource, "trade_manager.json"),
                            source(PaperWalletSource, "paper_wallet.yaml"),
                            source(PositionsLogSource, "positions_log.log")]
    return SupervisorSpec(children=(
        ChildSpec("alerts", factory=_Sink),
        ChildSpec("breaker", factory=lambda: BreakerActor(breaker), thread=SHARED),
        ChildSpec("ledger", supervisor=SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE, children=tuple(ledger_children))),
        ChildSpec("exchange", factory=lambda: StampingExchange(exchange, arrivals), thread=SHARED,
                  urgent=SHARED is not None),
        ChildSpec("pipeline", supervisor=SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=(
                ChildSpec("market", factory=lambda: MarketActor(market), thread=SHARED),
                ChildSpec("scanner", factory=lambda: ScannerActor(scanner), thread=SHARED),
                ChildSpec("evaluator", factory=lambda: EvaluatorActor(evaluator), thread=SHARED),
                ChildSpec("executor", factory=lambda: ExecutorActor(executor), thread=SHARED,
                          urgent=SHARED is not None),
                ChildSpec("exits", factory=lambda: ExitsActor(exits), thread=SHARED),
            ))),
    ))


# -- ticks and their times ------------------------------------------------------------------------
@dataclass
class TickLog:
    """Per symbol, in sending order: bar time (int, as in signal ids), scheduled time, sent
    time and step of every tick."""

    ats: dict[str, list[int]] = field(default_factory=dict)
    due: dict[str, list[float]] = field(default_factory=dict)
    sent: dict[str, list[float]] = field(default_factory=dict)
    step: dict[str, list[int]] = field(default_factory=dict)

    def add(self, bar: Bar, due: float, sent: float, step: int) -> None:
        s = bar.symbol
        if s not in self.ats:
            self.ats[s], self.due[s], self.sent[s], self.step[s] = [], [], [], []
        self.ats[s].append(int(bar.at))
        self.due[s].append(due)
        self.sent[s].append(sent)
        self.step[s].append(step)

    def match(self, arrival: Arrival, depth: int = 2_000) -> Matched | None:
        """The tick that caused ``arrival``: the latest tick of its symbol, sent before the
        order arrived, whose signal id (a strategy's, or an exit's) gives its client order
        id."""
        s = arrival.symbol
        sent = self.sent.get(s)
        if not sent:
            return None
        coid = arrival.client_order_id
        top = bisect.bisect_right(sent, arrival.at)
        for j in range(top - 1, max(-1, top - 1 - depth), -1):
            at = self.ats[s][j]
            if any(client_order_id(f"{name}:{s}:{at}:{arrival.side}") == coid
                   for name in STRATEGIES):
                return Matched(self.due[s][j], sent[j], self.step[s][j], exit=False)
            if arrival.side == "sell" and any(
                    client_order_id(f"exit:{reason}:{s}:{at}") == coid
                    for reason in EXIT_REASONS):
                return Matched(self.due[s][j], sent[j], self.step[s][j], exit=True)
        return None


@dataclass(frozen=True, slots=True)
class Matched:
    """When the tick behind an order was due and sent, in which step, and the order's kind:
    a strategy's (tick -> scanner -> evaluator -> executor) or an exit's (tick -> exits ->
    executor)."""

    due: float
    sent: float
    step: int
    exit: bool


class Ticks:
    """Owns the synthetic market that makes the ticks, one step (all symbols) at a time."""

    def __init__(self, symbols: dict[str, float]) -> None:
        self.market = SyntheticMarket(symbols, seed=SEED, crash_at_bar=None)
        self.market.step()  # the market actor emits this first step from its own timer
        self._pending: list[Bar] = []

    def take(self, count: int) -> list[Bar]:
        while len(self._pending) < count:
            self._pending.extend(self.market.step())
        out, self._pending = self._pending[:count], self._pending[count:]
        return out


# -- one step of offered load ----------------------------------------------------------------------
@dataclass
class StepResult:
    """One step of offered load: latencies of its strategy (and exit) orders, and how the
    pipeline coped."""

    rate: float
    ticks: int
    seconds: float
    orders: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    p99_ci_ms: tuple[float | None, float | None]  # 95 %, distribution-free (see quantile_ci)
    sent_p99_ms: float | None  # from the moment the tick was actually told
    lag_end_ms: float  # how late the last tick went out
    lag_p99_ms: float
    backlog_ms: float  # asking the pipeline in data-flow order, after the last tick
    cpu_us_per_tick: float
    max_mailbox: dict[str, int]
    cpu_by_actor: dict[str, float]  # us of CPU per tick, per actor thread (and the feeder)
    handler_us: dict[str, float]  # mean wall time per message in each actor's handler
    handler_tick_us: dict[str, float]  # wall time in each actor's handler per tick
    exit_orders: int = 0
    exit_p50_ms: float | None = None
    exit_p99_ms: float | None = None
    unmatched: int = 0
    kept_up: bool = False
    sustained: bool = False


def drain(rt: Runtime) -> None:
    """Ask the pipeline in data-flow order: each reply means that actor has handled all that
    was sent to it before (and what it sent on is queued downstream)."""
    rt.ask("market", GetMarketStats(), timeout=60)
    rt.ask("scanner", "candidates", timeout=60)
    rt.ask("evaluator", ProxyGetAttr(attr_path=("signals",)), timeout=60)
    rt.ask("exits", ProxyGetAttr(attr_path=("requests",)), timeout=60)
    rt.ask("executor", GetExecutorStats(), timeout=60)


def feeds_of(ticks: list[Bar], batch: int) -> list[FeedBars]:
    """The messages that carry ``ticks``, ``batch`` to a message. Made before the clock
    starts (and before the collection that precedes it): the feeder's own work per tick
    is then a tell and a note of the time, since what the bench spends competes for the
    GIL with what it measures."""
    return [FeedBars(tuple(ticks[k:k + batch])) for k in range(0, len(ticks), batch)]


def offer(rt: Runtime, feeds: list[FeedBars], *, rate: float, batch: int, step: int,
          log: TickLog) -> tuple[float, list[float], dict[str, int], float]:
    """Tell the market ``feeds`` at ``rate`` ticks per second (``batch`` per FeedBars).

    Returns the start time, each message's lateness (s), the deepest mailboxes seen, and
    the scheduled time of the last message.
    """
    tell = rt.tell
    clock = time.perf_counter
    sleep = time.sleep
    cells = {name: rt.cell(name) for name in PIPELINE}
    deepest = dict.fromkeys(PIPELINE, 0)
    interval = batch / rate
    messages = len(feeds)
    sent_at: list[float] = []
    note = sent_at.append
    start = clock() + 0.002
    next_sample = start
    due = start
    for k in range(messages):
        due = start + k * interval
        now = clock()
        if now < due:
            sleep(due - now)
        sent = clock()
        tell("market", feeds[k])
        note(sent)
        if sent >= next_sample:  # every 10 ms: how deep are the mailboxes?
            next_sample = sent + 0.01
            for name, cell in cells.items():
                deepest[name] = max(deepest[name], len(cell.mailbox))
    lags = []
    for k, (feed, sent) in enumerate(zip(feeds, sent_at, strict=True)):
        scheduled = start + k * interval
        lags.append(sent - scheduled)
        for bar in feed.bars:
            log.add(bar, scheduled, sent, step)
    return start, lags, deepest, due


def run_step(rt: Runtime, source: Ticks, log: TickLog, arrivals: list[Arrival], *, rate: float,
             seconds: float, batch: int, step: int, settle: float) -> StepResult:
    count = max(batch, int(rate * seconds))
    ticks = source.take(count)
    first_arrival = len(arrivals)
    feeds = feeds_of(ticks, batch)
    gc.collect()
    handlers0 = handler_totals(rt)
    threads0 = thread_cpu()
    cpu0 = time.process_time()
    _, lags, deepest, last_due = offer(rt, feeds, rate=rate, batch=batch, step=step, log=log)
    drain(rt)
    drained = time.perf_counter()
    cpu = time.process_time() - cpu0
    threads1 = thread_cpu()
    handlers1 = handler_totals(rt)
    handler_us = {name: (total - handlers0[name][0]) / (handled - handlers0[name][1]) * 1e6
                  for name, (total, handled) in handlers1.items()
                  if handled > handlers0[name][1]}
    handler_tick_us = {name: (total - handlers0[name][0]) / len(ticks) * 1e6
                       for name, (total, _) in handlers1.items()}
    by_actor = {name: (used - threads0.get(name, 0.0)) / len(ticks) * 1e6
                for name, used in threads1.items()}
    time.sleep(settle)  # late orders of this step (exits, slow fills) arrive
    drain(rt)
    latencies: list[float] = []
    from_sent: list[float] = []
    exits: list[float] = []
    unmatched = 0
    for arrival in arrivals[first_arrival:]:
        found = log.match(arrival)
        if found is None:
            unmatched += 1
            continue
        if found.step != step:
            continue
        if found.exit:
            exits.append((arrival.at - found.due) * 1e3)
            continue
        latencies.append((arrival.at - found.due) * 1e3)
        from_sent.append((arrival.at - found.sent) * 1e3)
    return StepResult(
        rate=rate, ticks=len(ticks), seconds=seconds, orders=len(latencies),
        p50_ms=pct(latencies, 50), p99_ms=pct(latencies, 99),
        max_ms=max(latencies) if latencies else None, p99_ci_ms=quantile_ci(latencies, 0.99),
        sent_p99_ms=pct(from_sent, 99),
        lag_end_ms=lags[-1] * 1e3, lag_p99_ms=(pct(lags, 99) or 0.0) * 1e3,
        backlog_ms=(drained - last_due - lags[-1]) * 1e3,
        cpu_us_per_tick=cpu / len(ticks) * 1e6, max_mailbox=deepest,
        cpu_by_actor={k: v for k, v in sorted(by_actor.items(), key=lambda kv: -kv[1])
                      if v >= 0.05},
        exit_orders=len(exits), exit_p50_ms=pct(exits, 50), exit_p99_ms=pct(exits, 99),
        unmatched=unmatched, handler_us=handler_us, handler_tick_us=handler_tick_us)


def handler_totals(rt: Runtime) -> dict[str, tuple[float, int]]:
    """Per pipeline actor: seconds spent in handlers so far, and messages handled (the
    runtime's own per-child handler histogram)."""
    out = {}
    for name in PIPELINE:
        latency = rt.cell(name).latency
        out[name] = (latency.total, latency.count)
    return out


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each live thread, keyed by actor name
    (the runtime names an actor's thread ``botvisor:NAME#INCARNATION``)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = names.get(t.id, "other")
        if name.startswith("botvisor:"):
            name = name[len("botvisor:"):].split("#", 1)[0]
        elif name == "MainThread":
            name = "feeder (main)"
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


def quantile_ci(values: list[float], q: float, confidence: float = 0.95
                ) -> tuple[float | None, float | None]:
    """A distribution-free confidence interval for the ``q`` quantile (0..1) of what
    ``values`` were drawn from: order statistics whose ranks the binomial distribution of
    "how many draws fall below the quantile" brackets with ``confidence``. An end the
    sample cannot bound is None: with few values the upper end of a p99 lies beyond the
    largest (up to about 370 values it always does at 95 %)."""
    n = len(values)
    if n == 0:
        return None, None
    ordered = sorted(values)
    tail = (1 - confidence) / 2
    log_q, log_r, top = math.log(q), math.log1p(-q), math.lgamma(n + 1)
    pmf = [math.exp(top - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q
                    + (n - k) * log_r) for k in range(n + 1)]
    below = 0.0  # P(B < lo), B ~ Binomial(n, q): draws below the quantile
    lo = 0
    while lo < n and below + pmf[lo] <= tail:
        below += pmf[lo]
        lo += 1
    above = 0.0  # P(B > hi) once the loop ends
    hi = n
    while hi > 0 and above + pmf[hi] <= tail:
        above += pmf[hi]
        hi -= 1
    # the quantile lies in [X(lo), X(hi + 1)] (1-based order statistics) with the
    # confidence asked for; X(0) is below every value and X(n + 1) above
    low = ordered[lo - 1] if lo >= 1 else None
    high = ordered[hi] if hi + 1 <= n else None
    return low, high


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) of ``values``, nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


# -- running ---------------------------------------------------------------------------------------
@dataclass
class Options:
    symbols: int
    rate: float
    seconds: float
    batch: int
    ramp: tuple[float, ...]
    step_seconds: float
    p99_bound_ms: float
    backlog_bound_ms: float
    lag_bound_ms: float
    sources: bool
    directory: str | None
    profile: int
    gc_freeze: bool = True
    budget_seconds: float = 50.0  # the ramp starts no step that would end after this
    baseline_seconds: float = 3.0  # the machine's own timer lateness, before the tree


def precise_timers() -> int | None:
    """Set the calling thread's timer slack to 1 ns (Linux; the default is 50 us), so the
    feeder's sleeps end when the schedule says: its lateness counts in every latency, and
    what the kernel adds to a sleep is the load generator's error, not the pipeline's.
    Threads started before keep theirs (the runtime's wait on events, not timers).
    Returns the slack now in force, or None where it cannot be set."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None).prctl
        prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        prctl.restype = ctypes.c_int
        if prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) != 0:
            return None
        slack = int(prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0))
    except (OSError, AttributeError):
        return None
    return slack if slack >= 0 else None


def machine_baseline(seconds: float, rate: float) -> list[float]:
    """How late the feeder's own loop is on this machine with nothing else running: a
    thread of its own (timer slack 1 ns, as the feeder's) sleeps to a schedule of ``rate``
    wake-ups per second (the feeder's messages) for ``seconds``, without the tree.
    Returns each wake-up's lateness (s).

    On a quiet machine it is a few tens of microseconds. A virtual machine whose host
    stalls it now and then shows those stalls here too, and every latency measured after
    includes them: read the p99 against this."""
    lateness: list[float] = []

    def loop() -> None:
        precise_timers()
        clock, sleep, note = time.perf_counter, time.sleep, lateness.append
        count = int(seconds * rate)
        start = clock() + 0.002
        for k in range(count):
            due = start + k / rate
            now = clock()
            if now < due:
                sleep(due - now)
            note(clock() - due)

    thread = threading.Thread(target=loop, name="bench:baseline")
    thread.start()
    thread.join()
    return lateness


def wait_market_ready(rt: Runtime) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats: MarketStats = rt.ask("market", GetMarketStats(), timeout=30)
        if stats.finished:
            return
        time.sleep(0.005)
    raise RuntimeError("the market actor did not finish its own first step")


def run(opts: Options) -> dict[str, Any]:
    symbols = symbol_prices(opts.symbols)
    # The scanner counts Bars messages, not steps: rank every 10 steps of all symbols.
    scanner_cycle = max(1, 10 * math.ceil(opts.symbols / opts.batch))
    arrivals: list[Arrival] = []
    log = TickLog()
    result: dict[str, Any] = {}
    began = time.perf_counter()
    lateness = machine_baseline(opts.baseline_seconds, opts.rate / opts.batch) \
        if opts.baseline_seconds > 0 else []
    if lateness:
        result["machine_sleep_late_p99_ms"] = (pct(lateness, 99) or 0.0) * 1e3
        result["machine_sleep_late_max_ms"] = max(lateness) * 1e3
        result["machine_sleeps"] = len(lateness)
        result["machine_sleeps_late_over_1ms"] = sum(1 for x in lateness if x > 1e-3)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-", dir=opts.directory) as tmp:
        rt = Runtime(ask_timeout=30, monitor_interval=0.5)
        t0 = time.perf_counter()
        deadline = t0 + opts.budget_seconds
        rt.start(tree(Path(tmp), symbols, arrivals, scanner_cycle=scanner_cycle,
                      sources=opts.sources))
        try:
            wait_market_ready(rt)
            result["startup_s"] = time.perf_counter() - t0
            if opts.gc_freeze:  # as `botvisor run` does once the tree is up (runtime.gc_freeze)
                result["gc_frozen_objects"] = freeze_startup_objects()
            result["feeder_timer_slack_ns"] = precise_timers()
            source = Ticks(symbols)
            # warm-up: fill the scanner's and the strategies' windows (25 steps), untimed
            warm = run_step(rt, source, log, arrivals, rate=opts.rate,
                            seconds=25 * opts.symbols / opts.rate, batch=opts.batch, step=0,
                            settle=0.2)
            result["warmup_orders"] = warm.orders
            profiler = _start_profile() if opts.profile else None
            main = run_step(rt, source, log, arrivals, rate=opts.rate, seconds=opts.seconds,
                            batch=opts.batch, step=1, settle=0.3)
            if profiler is not None:
                _print_profile(profiler, opts.profile)
            found = ramp(rt, source, log, arrivals, opts, deadline=deadline)
            stats: ExecutorStats = rt.ask("executor", GetExecutorStats(), timeout=30)
            gate = rt.peek("breaker")
        finally:
            rt.stop()
    result.update(_summary(main, found, stats=stats, gate=gate, opts=opts,
                           arrivals=len(arrivals)))
    result["elapsed_s"] = time.perf_counter() - began  # the whole run, baseline included
    return result


@dataclass
class Ramp:
    """What the ramp found. ``sustained``: every rate up to it kept up *and* kept its p99
    within the bound; ``capacity``: every rate up to it kept up (feeder on schedule, no
    backlog left), whatever the latency. ``cut_at``: the rate at which the time budget
    stopped the ramp (None: it was not), its first try already run if it had one;
    ``sustained_final``: False when the cut came before any rate failed the sustained
    test, so the true sustained rate may be higher than ``sustained``."""

    steps: list[StepResult] = field(default_factory=list)
    sustained: float = 0.0
    capacity: float = 0.0
    cut_at: float | None = None
    sustained_final: bool = True


def ramp(rt: Runtime, source: Ticks, log: TickLog, arrivals: list[Arrival], opts: Options, *,
         deadline: float) -> Ramp:
    """Raise the offered rate step by step. A step that would end either run is tried
    once more, against noise; the ramp stops when a rate does not keep up twice, or
    before a step expected to end after ``deadline`` (perf_counter). A step is expected
    to take as long as the last one, scaled by the rates (making its ticks, and any
    backlog, grow with the rate): an estimate, so the budget is approximate."""
    out = Ramp()
    chain = True  # every rate so far was sustained
    index = 2
    last, last_rate = opts.step_seconds + 1.0, 0.0  # wall seconds of the last step, its rate
    for rate in opts.ramp:
        kept = within = False
        for _attempt in range(2):
            expected = last * max(1.0, rate / last_rate) if last_rate else last
            if time.perf_counter() + expected > deadline:
                out.cut_at = rate
                if kept:  # its first try kept up; the retry (against noise) was not run
                    out.capacity = rate
                out.sustained_final = not chain
                return out
            began = time.perf_counter()
            step = run_step(rt, source, log, arrivals, rate=rate, seconds=opts.step_seconds,
                            batch=opts.batch, step=index, settle=0.2)
            last, last_rate = time.perf_counter() - began, rate
            index += 1
            # no queue ever held more than the backlog bound's worth of offered messages
            deepest = max(step.max_mailbox.values(), default=0)
            queue_bound = max(50.0, opts.backlog_bound_ms / 1e3 * rate / opts.batch)
            step.kept_up = (step.lag_end_ms <= opts.lag_bound_ms
                            and step.backlog_ms <= opts.backlog_bound_ms
                            and deepest <= queue_bound)
            step.sustained = step.kept_up and step.p99_ms is not None \
                and step.p99_ms <= opts.p99_bound_ms
            out.steps.append(step)
            kept, within = kept or step.kept_up, within or step.sustained
            if within or (kept and not chain):
                break  # nothing a retry could change
            time.sleep(0.5)  # let a backlog drain before the retry
        if not kept:
            break
        out.capacity = rate
        chain = chain and within
        if chain:
            out.sustained = rate
    return out


def _step_json(step: StepResult) -> dict[str, Any]:
    return {
        "rate": step.rate, "ticks": step.ticks, "orders": step.orders,
        "exit_orders": step.exit_orders, "exit_p99_ms": step.exit_p99_ms,
        "p50_ms": step.p50_ms, "p99_ms": step.p99_ms, "max_ms": step.max_ms,
        "p99_from_sent_ms": step.sent_p99_ms, "feed_lag_end_ms": step.lag_end_ms,
        "feed_lag_p99_ms": step.lag_p99_ms, "backlog_ms": step.backlog_ms,
        "cpu_us_per_tick": step.cpu_us_per_tick, "max_mailbox": step.max_mailbox,
        "cpu_us_per_tick_by_actor": step.cpu_by_actor, "handler_us": step.handler_us,
        "handler_us_per_tick": step.handler_tick_us,
        "kept_up": step.kept_up, "sustained": step.sustained,
    }


def _summary(main: StepResult, found: Ramp, *, stats: ExecutorStats, gate: Any,
             opts: Options, arrivals: int) -> dict[str, Any]:
    p99 = main.p99_ms
    sustained = found.sustained
    return {
        "tick_to_order_p50_ms": main.p50_ms,
        "tick_to_order_p99_ms": p99,
        "tick_to_order_max_ms": main.max_ms,
        "tick_to_order_p99_ci95_ms": list(main.p99_ci_ms),
        "tick_to_order_p99_from_sent_ms": main.sent_p99_ms,
        "sustained_ticks_per_s": sustained,
        "capacity_ticks_per_s": found.capacity,
        "ramp_cut_short_at": found.cut_at,
        "sustained_final": found.sustained_final,
        "rate": opts.rate,
        "symbols": opts.symbols,
        "batch": opts.batch,
        "sources": opts.sources,
        "ticks": main.ticks,
        "orders": main.orders,
        "orders_per_s": main.orders / opts.seconds,
        "exit_orders": main.exit_orders,
        "exit_tick_to_order_p50_ms": main.exit_p50_ms,
        "exit_tick_to_order_p99_ms": main.exit_p99_ms,
        "unmatched_orders": main.unmatched,
        "feed_lag_p99_ms": main.lag_p99_ms,
        "backlog_ms": main.backlog_ms,
        "cpu_us_per_tick": main.cpu_us_per_tick,
        "max_mailbox": main.max_mailbox,
        "cpu_us_per_tick_by_actor": main.cpu_by_actor,
        "handler_us": main.handler_us,
        "handler_us_per_tick": main.handler_tick_us,
        "ramp": [_step_json(s) for s in found.steps],
        "bounds": {"p99_ms": opts.p99_bound_ms, "backlog_ms": opts.backlog_bound_ms,
                   "feed_lag_ms": opts.lag_bound_ms},
        "executor": {"orders": stats.orders, "filled": stats.filled,
                     "refused": stats.refused, "skipped": stats.skipped,
                     "fills_recorded": stats.fills_recorded, "unrecorded": stats.unrecorded},
        "orders_at_exchange": arrivals,
        "breaker_state": gate.state.value if isinstance(gate, BreakerGate) else None,
        "targets": TARGETS,
        "met": {
            "tick_to_order_p99_ms": p99 is not None and p99 <= 2.0,
            # None: the time budget cut the ramp before the target was decided
            "sustained_ticks_per_s": (True if sustained >= 10_000 else
                                      False if found.sustained_final else None),
        },
    }


# -- profiling (optional, needs yappi) -------------------------------------------------------------
def _start_profile() -> Any:
    try:
        yappi: Any = importlib.import_module("yappi")
    except ImportError:
        sys.exit("--profile needs yappi (pip install yappi)")
    yappi.set_clock_type("cpu")
    yappi.clear_stats()
    yappi.start(builtins=False, profile_threads=True)
    return yappi


def _print_profile(yappi: Any, top: int) -> None:
    yappi.stop()
    out = sys.stderr
    threads = yappi.get_thread_stats()
    threads.sort("ttot", "desc")
    print("-- CPU seconds per thread during the measured step --", file=out)
    for t in threads:
        print(f"{t.ttot:9.3f}  {t.name}", file=out)
    funcs = yappi.get_func_stats()
    for sort in ("tsub", "ttot"):
        funcs.sort(sort, "desc")
        print(f"-- top {top} functions by {sort} (CPU s, all threads) --", file=out)
        for f in list(funcs)[:top]:
            where = f"{Path(f.module).name}:{f.lineno}"
            print(f"{f.tsub:8.3f} {f.ttot:8.3f} {f.ncall:9d}  {f.name}  ({where})", file=out)
    yappi.clear_stats()


# -- output ----------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def print_table(r: dict[str, Any]) -> None:
    met = r["met"]
    print(f"pipeline benchmark: {r['symbols']} symbols, {r['batch']} tick(s) per FeedBars, "
          f"ledger sources {'on' if r['sources'] else 'off (--sources adds them)'}")
    print(f"{'measure':<26}{'figure':>16}   {'target':<22}notes")
    rows: list[tuple[str, str, str, str]] = [
        ("tick-to-order p50", _ms(r["tick_to_order_p50_ms"]), "",
         f"{r['rate']:,.0f} ticks/s, {r['ticks']:,} ticks, {r['orders']:,} strategy orders "
         f"({r['orders_per_s']:.1f}/s)"),
        ("tick-to-order p99", _ms(r["tick_to_order_p99_ms"]),
         f"<= 2 ms  {'met' if met['tick_to_order_p99_ms'] else 'MISSED'}",
         f"max {_ms(r['tick_to_order_max_ms'])}; 95 % interval {_interval(r)}; p99 from "
         f"the tell {_ms(r['tick_to_order_p99_from_sent_ms'])}; feed lag p99 "
         f"{r['feed_lag_p99_ms']:.3f} ms"),
        ("  machine baseline", _ms(r.get("machine_sleep_late_p99_ms")), "",
         (f"p99 lateness of a bare sleep loop on the feeder's schedule, without the tree; "
          f"max {_ms(r['machine_sleep_late_max_ms'])}, {r['machine_sleeps_late_over_1ms']} "
          f"of {r['machine_sleeps']:,} over 1 ms (host stalls: they are in every figure)")
         if "machine_sleeps" in r else "skipped (--baseline-seconds 0)"),
        ("  exit orders p50 / p99", _ms(r["exit_tick_to_order_p50_ms"]), "",
         f"p99 {_ms(r['exit_tick_to_order_p99_ms'])}; {r['exit_orders']:,} orders from the "
         f"exits actor (tick -> exits -> executor)"
         + (f"; {r['unmatched_orders']} orders matched no tick" if r["unmatched_orders"] else "")),
        ("  cost", f"{r['cpu_us_per_tick']:.1f} us/tick", "",
         f"process CPU per tick; backlog after the last tick {r['backlog_ms']:.1f} ms"),
        ("  by thread", "", "", "us CPU per tick: " + ", ".join(
            f"{k} {v:.0f}" for k, v in list(r["cpu_us_per_tick_by_actor"].items())[:8])),
        ("  in handlers", "", "", "us wall per message: " + ", ".join(
            f"{k} {v:.0f}" for k, v in sorted(r["handler_us"].items(), key=lambda kv: -kv[1]))),
        ("", "", "", "us wall per tick: " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(r["handler_us_per_tick"].items(),
                                              key=lambda kv: -kv[1]))),
        ("sustained tick rate", ("" if r["sustained_final"] else ">= ")
         + f"{r['sustained_ticks_per_s']:,.0f} /s",
         f">= 10,000  {_verdict(met['sustained_ticks_per_s'])}",
         f"p99 <= {r['bounds']['p99_ms']:g} ms, backlog <= {r['bounds']['backlog_ms']:g} ms, "
         f"feed lag <= {r['bounds']['feed_lag_ms']:g} ms"
         + (f"; the time budget stopped the ramp at {r['ramp_cut_short_at']:,.0f}/s"
            if r["ramp_cut_short_at"] is not None else "")),
        ("  capacity", f"{r['capacity_ticks_per_s']:,.0f} /s", "",
         "highest rate that kept up (no backlog or deep queue, feeder on time), any latency"),
    ]
    for name, figure, target, notes in rows:
        print(f"{name:<26}{figure:>16}   {target:<22}{notes}")
    print()
    print(f"{'ramp rate':>10}{'orders':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'lag ms':>9}{'backlog':>9}{'us/tick':>9}  deepest mailbox")
    for s in r["ramp"]:
        deep = max(s["max_mailbox"].items(), key=lambda kv: kv[1])
        verdict = "" if s["sustained"] else "p99 over bound" if s["kept_up"] else "fell behind"
        print(f"{s['rate']:>10,.0f}{s['orders']:>8}{_num(s['p50_ms']):>9}{_num(s['p99_ms']):>9}"
              f"{_num(s['max_ms']):>9}{s['feed_lag_end_ms']:>9.2f}{s['backlog_ms']:>9.1f}"
              f"{s['cpu_us_per_tick']:>9.1f}  {deep[0]} {deep[1]}"
              f"   {verdict}")
    ex = r["executor"]
    print(f"\nexecutor: {ex['orders']} orders, {ex['filled']} filled, refused {ex['refused']}, "
          f"skipped {ex['skipped']}; breaker {r['breaker_state']}")


def _interval(r: dict[str, Any]) -> str:
    low, high = r["tick_to_order_p99_ci95_ms"]
    if low is None and high is None:
        return "-"
    return (f"{'-' if low is None else f'{low:.2f}'} to "
            f"{'beyond the max' if high is None else f'{high:.2f} ms'}")


def _verdict(met: bool | None) -> str:
    return "met" if met else "undecided" if met is None else "MISSED"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1_000.0, help="ticks/s, measured step")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured step length")
    parser.add_argument("--batch", type=int, default=1, help="ticks per FeedBars message")
    parser.add_argument("--ramp", default=",".join(str(r) for r in DEFAULT_RAMP),
                        help="offered rates of the ramp, ticks/s, comma-separated ('' skips)")
    parser.add_argument("--step-seconds", type=float, default=2.0)
    parser.add_argument("--p99-bound-ms", type=float, default=10.0)
    parser.add_argument("--backlog-bound-ms", type=float, default=100.0)
    parser.add_argument("--lag-bound-ms", type=float, default=50.0)
    parser.add_argument("--baseline-seconds", type=float, default=3.0,
                        help="first time a bare sleep loop on the feeder's schedule, without "
                             "the tree: the machine's own lateness (0 skips)")
    parser.add_argument("--budget-seconds", type=float, default=50.0,
                        help="the ramp starts no step expected to end later than this after "
                             "the tree's start (the bench is to finish within a minute)")
    parser.add_argument("--sources", action="store_true",
                        help="also run the ledger's three sources (trade manager, paper "
                             "wallet, positions log), as the shipped tree does")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the start-up objects to the collector (botvisor run "
                             "freezes them: runtime.gc_freeze)")
    parser.add_argument("--dir", default=None, help="where to make the temporary directory")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile the measured step with yappi; print the top N to stderr")
    args = parser.parse_args()
    if args.symbols < 1 or args.rate <= 0 or args.seconds <= 0 or args.batch < 1:
        parser.error("--symbols, --rate, --seconds and --batch must be positive")
    ramp = tuple(float(x) for x in args.ramp.split(",") if x.strip())
    logging.basicConfig(level=logging.ERROR)
    opts = Options(args.symbols, args.rate, args.seconds, args.batch, ramp, args.step_seconds,
                   args.p99_bound_ms, args.backlog_bound_ms, args.lag_bound_ms,
                   args.sources, args.dir, args.profile, not args.no_gc_freeze,
                   args.budget_seconds, args.baseline_seconds)
    result = run(opts)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
