"""Chaos under load: the shipped tree paper-trades at high speed with faults in every
actor for a fixed number of market steps; afterwards the state must audit clean.

``run_chaos_load(ticks, seed, workdir)`` is what the reliability bench calls (at scale)
and ``tests/system/test_rel_chaos_load.py`` calls (short). It runs a copy of
``config.yaml`` with its state under ``workdir``, a fast market, a raised restart
intensity, short deadlines and a ``chaos:`` section, plus a :class:`BreakerTape` child
that records the breaker's state at every step; then pauses the faults, drains, stops and
audits (:mod:`actors.reliability.audit`). Each change and its reason: docs/reliability.md.
"""

from __future__ import annotations

import copy
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from actors.common.polling import poll_until
from actors.common.raw_config import child_node, walk_children
from actors.execution.contract import ExecutorStats, GetExecutorStats
from actors.market.contract import Bars, MarketCursor
from actors.reliability.audit import audit_state
from actors.risk.contract import BreakerGate
from supervisor.actor import SupervisedActor
from supervisor.events import EventKind, EventRecorder
from supervisor.host.config import load_config
from supervisor.runtime import Runtime

__all__ = ["BreakerTape", "audit", "chaos_config", "run_chaos_load"]

SHIPPED = Path(__file__).resolve().parents[2] / "config.yaml"
STATE_FILES = {  # child -> (settings key, file name in the state directory)
    "alerts": ("fallback_file", "alerts-fallback.jsonl"),
    "breaker": ("database", "breaker.db"),
    "positions": ("database", "ledger.db"),
    "trade_manager": ("path", "trade_manager.json"),
    "paper_wallet": ("path", "paper_wallet.yaml"),
    "positions_log": ("path", "positions.log"),
    "exchange": ("database", "paper_exchange.db"),
    "market": ("clock_file", "market_clock.json"),
}
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
def chaos_config(ticks: int, seed: int, state: Path, *, speed: float = 60_000.0,
                 rate: float = 0.002, hang_rate: float | None = None,
                 io_rate: float | None = None,
                 max_restarts: int | None = 100_000, hang_shared: bool = False
                 ) -> dict[str, Any]:
    """The copy of ``config.yaml`` described in the module docstring, as data."""
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(SHIPPED.read_text(encoding="utf-8")))
    for name, (key, filename) in STATE_FILES.items():
        child_node(raw, name).setdefault("settings", {})[key] = str(state / filename)
    market = child_node(raw, "market")["settings"]
    market.update(speed=speed, max_steps=ticks)
    market["subscribers"] = [*market.get("subscribers", ["scanner", "exits"]), "tape"]
    child_node(raw, "breaker")["settings"].update(recovery_timeout=1.0, max_recovery_timeout=4.0)
    raw["tree"]["children"].insert(
        0, {"name": "tape", "actor": "actors.reliability.chaos_load:BreakerTape"})
    backoff = {"initial": 0.01, "maximum": 0.1, "multiplier": 2, "jitter": 0.01,
               "reset_after": 1}
    if max_restarts is not None:
        intensity = {"max_restarts": max_restarts, "within_seconds": 60}
        for sup in [raw["tree"], *(c for c in walk_children(raw["tree"]["children"])
                                   if "children" in c)]:
            sup["intensity"] = dict(intensity)
            sup["backoff"] = dict(backoff)
    hangers = [n["name"] for n in walk_children(raw["tree"]["children"])
               if "actor" in n and (n["name"] in OWN_THREAD_HANGERS
                                    or (hang_shared and n.get("thread")))]
    for name in hangers:
        child_node(raw, name)["handler_deadline"] = 1.0
    every = {"raise": {"RuntimeError": rate, "ConnectionError": rate}, "slow": rate,
             "slow_seconds": 0.005, "hang": 0.0,
             # a state write is rarer than a message: ten times the rate, so a run meets some
             "io_error": min(10 * rate, 0.5) if io_rate is None else io_rate}
    actors: dict[str, Any] = {"*": every, "tape": {"raise": {}, "slow": 0.0, "io_error": 0.0}}
    for name in hangers:
        actors[name] = {"hang": 2 * rate if hang_rate is None else hang_rate}
    # pykka's proxy messages stay exempt; supervision events are faulted too (the events
    # and alerts actors handle little else)
    raw["chaos"] = {"enabled": True, "seed": seed, "hang_margin": 0.5, "actors": actors,
                    "skip_messages": ["ProxyCall", "ProxyGetAttr", "ProxySetAttr"]}
    return raw


# -- the run -------------------------------------------------------------------------------
def _wait(check: Callable[[], T | None], timeout: float, what: str, poll: float = POLL) -> T:
    # an exception is an actor restarting, or a fault injected into an ask: try again
    return poll_until(check, timeout=timeout, what=what, poll=poll, tolerate=(Exception,))


def _steps(rt: Runtime) -> int:
    cursor = rt.peek("market")
    return cursor.steps if isinstance(cursor, MarketCursor) else 0


def run_chaos_load(ticks: int, seed: int, workdir: Path | str, *, speed: float = 60_000.0,
                   rate: float = 0.002, hang_rate: float | None = None,
                   io_rate: float | None = None,
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
                       io_rate=io_rate, max_restarts=max_restarts, hang_shared=hang_shared)
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
            hangs = sum(per.get("hang", 0) for per in plan.counts().values())
            _wait(lambda: len(events.of(EventKind.HUNG)) >= hangs, 30,
                  f"each of the {hangs} injected hang(s) to be detected")
            _wait(lambda: _settled(rt), 60,
                  "the executor (nothing out, every fill the venue made recorded)")
            _wait(lambda: _caught_up(path, work), 60, "the sources to catch up", poll=0.2)
            tape = _wait(lambda: rt.ask("tape", "tape", timeout=30), 30, "the tape")
            tree_up = _wait(lambda: _all_running(rt), 30, "every actor running")
    except TimeoutError as exc:
        violations.append(str(exc))
    finally:
        exit_code = rt.exit_code if rt.wait(0) else None
        steps = _steps(rt)
        rt.stop()
    seconds = time.monotonic() - started
    found, fills, orders = audit(path, work, tape)
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
def _caught_up(config: Path, work: Path) -> bool:
    """No source lags the ledger (the auditor's notes say which would)."""
    return not any("lags the ledger" in note for note in audit_state(config, work).notes)


def audit(config: Path, work: Path, tape: list[tuple[float, str]]
          ) -> tuple[list[str], int, int]:
    """Check the invariants on the state files a run of ``config`` left: (violations,
    fills checked, orders checked).

    :func:`actors.reliability.audit.audit_state` does the checks on the files (ledger =
    venue exactly once, unique client order ids, sources vs the ledger, fills inside a long
    OPEN stretch by wall clock); to it this adds the breaker check by market time, which at
    1,000 bars a second is the sharper one: ``tape`` is (bar time, breaker state) per market
    step, and no buy may have filled at a bar around which the breaker was OPEN or HALTED
    for ``SLACK_BARS`` bars on either side."""
    report = audit_state(config, work)
    violations = list(report.violations)
    violations.extend(f"state missing: {m}" for m in report.missing)
    violations.extend(_buys_while_open(_venue_buys(config), tape))
    return violations, report.fills_checked, report.orders_checked


def _settled(rt: Runtime) -> bool:
    """The executor has nothing out and no fill waiting for the ledger (a commit that a
    state-write fault failed is retried on the executor's clock)."""
    stats = rt.ask("executor", GetExecutorStats(), timeout=30)
    return isinstance(stats, ExecutorStats) and stats.unrecorded == 0


def _venue_buys(config: Path) -> list[tuple[str, float]]:
    """(fill id, bar time) of every buy in the paper exchange's record."""
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    path = Path(child_node(raw, "exchange")["settings"]["database"])
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT fill_id, at FROM fills WHERE side = 'buy' ORDER BY rowid")
        return [(str(f), float(at)) for f, at in rows.fetchall()]
    finally:
        db.close()


def _buys_while_open(buys: list[tuple[str, float]], tape: list[tuple[float, str]]
                     ) -> list[str]:
    at_index = {at: i for i, (at, _s) in enumerate(tape)}
    blocked = [s in ("open", "halted") for _at, s in tape]
    out = []
    for fill_id, at in buys:
        i = at_index.get(at)
        # a buy at one of the last bars may have been made after the market's last step
        # (while the run drains, the breaker moves on by wall clock, to HALF_OPEN and its
        # probe), where the tape sees nothing: the auditor's wall-clock check judges it
        if i is None or i + SLACK_BARS >= len(tape):
            continue
        window = blocked[max(0, i - SLACK_BARS): i + SLACK_BARS + 1]
        if window and all(window):
            out.append(f"buy {fill_id} filled at market step {i} while the breaker was open")
    return out
