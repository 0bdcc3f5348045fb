"""Chaos under load: the shipped tree paper-trades at high speed with faults in every
actor for a fixed number of market steps; afterwards every invariant must hold.

``run_chaos_load(ticks, seed, workdir)`` is what the reliability bench calls (at scale)
and what ``tests/test_rel_chaos_load.py`` calls (short). It builds the tree from a copy of
``config.yaml`` and changes only this, each for the reason given:

* every state file goes under ``workdir/state`` (nothing shared with a real bot);
* ``market.speed`` (``speed``, default 60,000: 1,000 one-minute bars a second) and
  ``market.max_steps = ticks``, so the run is short and ends by itself; ``crash_at_bar``
  is kept, so the breaker opens (volatility); its ``recovery_timeout`` is 1 s (at most
  4 s) instead of 120 s, so it goes OPEN -> HALF_OPEN -> CLOSED (or OPEN again) within a
  run and trading goes on after the crash;
* every supervisor's intensity is raised to ``max_restarts`` in 60 s (default 100,000)
  and its backoff shortened to 10-100 ms: the shipped 5 restarts a minute would end the
  process at the sixth injected fault, and a 30 s backoff would leave a faulted actor down
  for the rest of a short run (``max_restarts=None`` keeps the shipped intensity: the
  process may then end non-zero, which the checks accept if nothing acknowledged is lost);
* the own-thread actors that can hang (positions, alerts, events) get a handler deadline
  of 1 s, so an injected hang (deadline + 0.5 s) costs 1.5 s, not 31 s;
* a ``chaos:`` section: every worker raises RuntimeError / ConnectionError (classified
  restart) and slows down, at ``rate`` per message each; positions, alerts and events
  also hang, at ``hang_rate`` (default ``2 * rate``; shared-thread hangs only with
  ``hang_shared``: recovering a hung thread-mate is the kernel's shared-thread work);
  state-write faults at ``rate``
  wherever storage calls ``ctx.chaos.before_write``;
* a :class:`BreakerTape` child records the breaker's state at every market step (it is
  an observer, not the bot: no faults are injected into it).

After ``ticks`` steps the faults are paused (:meth:`ChaosPlan.pause`), the pipeline is
drained, the sources are given time to catch up with the ledger, the tree is checked to
be up, it is stopped, and the state files are audited (see :func:`audit`).
"""

from __future__ import annotations

import copy
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml

from actors.breaker_gate import BreakerGate
from actors.executor import ExecutorStats, GetExecutorStats
from actors.market import Bars, MarketCursor
from actors.sources import (
    PaperWalletSource,
    PositionsLogSource,
    SourceActor,
    SourceSettings,
    TradeManagerSource,
)
from supervisor.actor import SupervisedActor
from supervisor.config import load_config
from supervisor.events import EventKind, EventRecorder
from supervisor.runtime import Runtime

__all__ = ["BreakerTape", "audit", "chaos_config", "run_chaos_load"]

SHIPPED = Path(__file__).resolve().parent.parent / "config.yaml"
STATE_FILES = {  # child -> (settings key, file name in the state directory)
    "alerts": ("fallback_file", "alerts-fallback.jsonl"),
    "breaker": ("database", "breaker.db"),
    "positions": ("database", "ledger.db"),
    "trade_manager": ("path", "trade_manager.json"),
    "paper_wallet": ("path", "paper_wallet.yaml"),
    "positions_log": ("path", "positions.log"),
    "exchange": ("database", "paper_exchange.db"),
}
SOURCES: dict[str, type[SourceActor]] = {
    "trade_manager": TradeManagerSource, "paper_wallet": PaperWalletSource,
    "positions_log": PositionsLogSource}
OWN_THREAD_HANGERS = ("positions", "alerts", "events")
SLACK_BARS = 3  # bars between the tape seeing a state and the executor acting on it
POLL = 0.01

T = TypeVar("T")


class BreakerTape(SupervisedActor):
    """Records, for every market step it is sent, (bar time, breaker state) as the
    breaker's published gate says when the step arrives; ``"tape"`` (an ask) returns it."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[tuple[float, str]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            gate = self.ctx.peek("breaker")
            state = gate.state.value if isinstance(gate, BreakerGate) else "none"
            self.entries.append((message.bars[0].at, state))
            return None
        if message == "tape":
            return list(self.entries)
        return super().on_receive(message)


# -- the config ----------------------------------------------------------------------------
def _walk(children: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for child in children:
        yield child
        yield from _walk(child.get("children") or [])


def _node(raw: dict[str, Any], name: str) -> dict[str, Any]:
    for child in _walk(raw["tree"]["children"]):
        if child["name"] == name:
            return child
    raise KeyError(f"no child named {name!r} in the config")


def chaos_config(ticks: int, seed: int, state: Path, *, speed: float = 60_000.0,
                 rate: float = 0.002, hang_rate: float | None = None,
                 max_restarts: int | None = 100_000, hang_shared: bool = False
                 ) -> dict[str, Any]:
    """The copy of ``config.yaml`` described in the module docstring, as data."""
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(SHIPPED.read_text(encoding="utf-8")))
    for name, (key, filename) in STATE_FILES.items():
        _node(raw, name).setdefault("settings", {})[key] = str(state / filename)
    market = _node(raw, "market")["settings"]
    market.update(speed=speed, max_steps=ticks)
    market["subscribers"] = [*market.get("subscribers", ["scanner", "exits"]), "tape"]
    _node(raw, "breaker")["settings"].update(recovery_timeout=1.0, max_recovery_timeout=4.0)
    raw["tree"]["children"].insert(0, {"name": "tape", "actor": "actors.chaos_load:BreakerTape"})
    backoff = {"initial": 0.01, "maximum": 0.1, "multiplier": 2, "jitter": 0.01,
               "reset_after": 1}
    if max_restarts is not None:
        intensity = {"max_restarts": max_restarts, "within_seconds": 60}
        for sup in [raw["tree"], *(c for c in _walk(raw["tree"]["children"])
                                   if "children" in c)]:
            sup["intensity"] = dict(intensity)
            sup["backoff"] = dict(backoff)
    hangers = [n["name"] for n in _walk(raw["tree"]["children"])
               if "actor" in n and (n["name"] in OWN_THREAD_HANGERS
                                    or (hang_shared and n.get("thread")))]
    for name in hangers:
        _node(raw, name)["handler_deadline"] = 1.0
    every = {"raise": {"RuntimeError": rate, "ConnectionError": rate}, "slow": rate,
             "slow_seconds": 0.005, "io_error": rate, "hang": 0.0}
    actors: dict[str, Any] = {"*": every, "tape": {"raise": {}, "slow": 0.0, "io_error": 0.0}}
    for name in hangers:
        actors[name] = {"hang": 2 * rate if hang_rate is None else hang_rate}
    # pykka's proxy messages stay exempt; supervision events are faulted too (the events
    # and alerts actors handle little else)
    raw["chaos"] = {"enabled": True, "seed": seed, "hang_margin": 0.5, "actors": actors,
                    "skip_messages": ["ProxyCall", "ProxyGetAttr", "ProxySetAttr"]}
    return raw


# -- the run -------------------------------------------------------------------------------
def _wait(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            found = check()
        except Exception:  # an actor restarting, or a fault in an ask: try again
            found = None
        if found is not None and found is not False:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        pause.wait(POLL)


def _steps(rt: Runtime) -> int:
    cursor = rt.peek("market")
    return cursor.steps if isinstance(cursor, MarketCursor) else 0


def run_chaos_load(ticks: int, seed: int, workdir: Path | str, *, speed: float = 60_000.0,
                   rate: float = 0.002, hang_rate: float | None = None,
                   max_restarts: int | None = 100_000, hang_shared: bool = False,
                   timeout: float | None = None) -> dict[str, Any]:
    """Run the chaos load (module docstring) in this process; what happened and what broke.

    Returns ``faults_injected``, ``faults`` (per actor and kind), ``restarts``, ``hung``,
    ``escalations``, ``exit_code`` (None: the tree was still up), ``tree_up``, ``steps``,
    ``breaker_states`` (market steps the tape saw in each breaker state),
    ``fills_checked``, ``orders_checked``, ``seconds`` and ``violations`` (a list of
    strings, empty when every invariant held)."""
    work = Path(workdir)
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    path = work / "chaos-config.yaml"
    raw = chaos_config(ticks, seed, state, speed=speed, rate=rate, hang_rate=hang_rate,
                       max_restarts=max_restarts, hang_shared=hang_shared)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    config, spec = load_config(path)
    plan = config.chaos_plan()
    assert plan is not None
    rt = Runtime(error_handler=config.error_handler(), ask_timeout=config.runtime.ask_timeout,
                 monitor_interval=config.runtime.monitor_interval,
                 event_history=config.runtime.event_history, chaos=plan)
    events = EventRecorder(rt.events)
    limit = timeout if timeout is not None else 60.0 + ticks / speed * 60.0 * 20
    started = time.monotonic()
    violations: list[str] = []
    tape: list[tuple[float, str]] = []
    tree_up = False
    rt.start(spec, name=config.runtime.name, shutdown=config.tree.shutdown)
    try:
        _wait(lambda: _steps(rt) >= ticks or rt.wait(0), limit, f"{ticks} market steps")
        plan.pause()  # the faults stop; now the tree must heal and the state agree
        if not rt.wait(0):
            _wait(lambda: isinstance(rt.ask("executor", GetExecutorStats(), timeout=30),
                                     ExecutorStats), 60, "the executor (nothing out)")
            _wait(lambda: _sources_caught_up(state), 60, "the sources to catch up")
            tape = _wait(lambda: rt.ask("tape", "tape", timeout=30), 30, "the tape")
            tree_up = _wait(lambda: _all_running(rt), 30, "every actor running")
    except TimeoutError as exc:
        violations.append(str(exc))
    finally:
        exit_code = rt.exit_code if rt.wait(0) else None
        steps = _steps(rt)
        rt.stop()
    seconds = time.monotonic() - started
    found, fills, orders = audit(state, tape)
    violations.extend(found)
    if exit_code is not None and exit_code == 0:
        violations.append("the tree ended by itself with status 0 under chaos")
    elif exit_code is None and not tree_up:
        violations.append("the tree was not up at the end")
    counts = plan.counts()
    return {
        "ticks": ticks, "seed": seed, "steps": steps,
        "faults_injected": plan.faults_injected, "faults": counts,
        "restarts": len(events.of(EventKind.RESTARTED)),
        "hung": len(events.of(EventKind.HUNG)),
        "escalations": len(events.of(EventKind.ESCALATED)),
        "exit_code": exit_code, "tree_up": tree_up,
        "breaker_states": dict(Counter(s for _at, s in tape)),
        "fills_checked": fills, "orders_checked": orders,
        "seconds": round(seconds, 3), "violations": violations,
    }


def _all_running(rt: Runtime) -> bool:
    root = rt.tree()
    return root is not None and all(n.state == "running" for n in root.walk())


# -- the audit -----------------------------------------------------------------------------
def _read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class _Ledger:
    seq: int
    positions: dict[str, tuple[Decimal, Decimal]]
    cash: Decimal


def _ledger(path: Path) -> _Ledger:
    seq = max(int(_read(path, "SELECT COALESCE(MAX(seq), 0) FROM fills")[0][0]),
              int(_read(path, "SELECT COALESCE(MAX(seq), 0) FROM adjustments")[0][0]))
    positions = {str(s): (Decimal(q), Decimal(p)) for s, q, p in _read(
        path, "SELECT symbol, quantity, avg_price FROM positions") if Decimal(q) != 0}
    cash = Decimal(dict(_read(path, "SELECT key, value FROM account"))["cash"])
    return _Ledger(seq, positions, cash)


def _source_states(state: Path) -> dict[str, Any]:
    out = {}
    for name, cls in SOURCES.items():
        file = state / STATE_FILES[name][1]
        source = cls(SourceSettings(path=str(file)))
        out[name] = source, source.load()
    return out


def _source_problems(state: Path) -> list[str]:
    """How each source differs from the ledger (empty: every source reconciles)."""
    ledger = _ledger(state / "ledger.db")
    problems = []
    for name, (source, loaded) in _source_states(state).items():
        if loaded.last_seq != ledger.seq:
            problems.append(f"{name} applied ledger events up to {loaded.last_seq}, "
                            f"the ledger has {ledger.seq}")
        held = {s: (p.quantity, p.avg_price) for s, p in loaded.book.positions.items()
                if p.quantity != 0}
        if {s: q for s, (q, _) in held.items()} != \
                {s: q for s, (q, _) in ledger.positions.items()}:
            problems.append(f"{name} holds {held}, the ledger {ledger.positions}")
        if source.keeps_cash and loaded.book.cash != ledger.cash:
            problems.append(f"{name} has cash {loaded.book.cash}, the ledger {ledger.cash}")
    return problems


def _sources_caught_up(state: Path) -> bool:
    return not _source_problems(state)


def audit(state: Path, tape: list[tuple[float, str]]) -> tuple[list[str], int, int]:
    """Check the invariants on the state files after a run: (violations, fills checked,
    orders checked). ``tape``: (bar time, breaker state) per market step."""
    violations: list[str] = []
    venue_db, ledger_db = state / "paper_exchange.db", state / "ledger.db"
    if not venue_db.exists() or not ledger_db.exists():
        return [f"state file missing: {p.name}" for p in (venue_db, ledger_db)
                if not p.exists()], 0, 0
    cols = "fill_id, client_order_id, symbol, side, quantity, price, fee, at"
    venue = _read(venue_db, f"SELECT {cols} FROM fills ORDER BY rowid")
    ledger = _read(ledger_db, f"SELECT {cols} FROM fills ORDER BY seq")
    orders = _read(venue_db, "SELECT client_order_id, side FROM orders ORDER BY rowid")
    # 1. ledger fills = venue fills, exactly once, by fill id
    ids = [r[0] for r in ledger]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
    if dupes:
        violations.append(f"fill id(s) recorded twice in the ledger: {dupes[:5]}")
    by_id = {r[0]: r for r in ledger}
    venue_ids = {r[0] for r in venue}
    missing = [r[0] for r in venue if r[0] not in by_id]
    if missing:
        violations.append(f"{len(missing)} venue fill(s) missing from the ledger: {missing[:5]}")
    extra = sorted(set(by_id) - venue_ids)
    if extra:
        violations.append(f"{len(extra)} ledger fill(s) the venue never made: {extra[:5]}")
    differ = [r[0] for r in venue if r[0] in by_id and _fill(by_id[r[0]]) != _fill(r)]
    if differ:
        violations.append(f"fill(s) recorded differently from the venue: {differ[:5]}")
    # 2. no two orders share a client order id (the venue's, and the ledger's fills' orders)
    coids = [c for c, _ in orders]
    if len(coids) != len(set(coids)):
        violations.append("two venue orders share a client order id")
    strays = sorted({r[1] for r in ledger} - set(coids))
    if strays:
        violations.append(f"ledger fills of orders the venue never had: {strays[:5]}")
    # 3. no exposure-increasing order while the breaker was OPEN (or HALTED): no buy
    # filled at a bar where the breaker had been open for SLACK_BARS bars around it
    violations.extend(_buys_while_open(venue, tape))
    # 4. every source reconciles with the ledger
    violations.extend(_source_problems(state))
    return violations, len(venue), len(orders)


def _fill(row: tuple[Any, ...]) -> tuple[Any, ...]:
    fid, coid, sym, side, qty, price, fee, at = row
    return (fid, coid, sym, side, Decimal(str(qty)), Decimal(str(price)), Decimal(str(fee)),
            float(at))


def _buys_while_open(venue: list[tuple[Any, ...]], tape: list[tuple[float, str]]
                     ) -> list[str]:
    if not tape:
        return []
    at_index = {at: i for i, (at, _s) in enumerate(tape)}
    blocked = [s in ("open", "halted") for _at, s in tape]
    out = []
    for row in venue:
        if row[3] != "buy":
            continue
        i = at_index.get(float(row[7]))
        if i is None:
            continue
        window = blocked[max(0, i - SLACK_BARS): i + SLACK_BARS + 1]
        if window and all(window):
            out.append(f"buy {row[0]} filled at bar {i} while the breaker was open")
    return out
