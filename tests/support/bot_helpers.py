"""Running the shipped tree from a copy of ``config.yaml``, and reading what it left on disk.

* :func:`shipped_config` reads ``config.yaml`` as data; :func:`node` finds a child in it by
  name; :func:`redirect_state` points every state file into a test directory;
  :func:`write_config` writes the copy. Each test states, next to the call, which values it
  changes and why.
* :func:`start_tree` builds and starts the tree from the copy the way ``botvisor run`` does
  (``load_config``, a Runtime with the config's runtime settings, the root's name).
* :class:`MarketTape` is a real actor a test adds to the tree and to the market's
  subscribers: for every market step it records the bar time and the breaker state it saw.
* :func:`crash` makes a running actor raise from its own message handler, whatever its
  class: it tells it pykka's own ``ProxyCall`` message naming a method that does not exist,
  so pykka's dispatch raises AttributeError inside the actor's thread (classified
  error -> restart). No production actor has a test-only code path for it.
* :func:`venue_fills` and :func:`ledger_fills` read the paper exchange's and the ledger's
  SQLite files directly, read-only.
* :func:`wait_until` polls a condition until a deadline; :func:`drain_pipeline` asks the
  pipeline's actors in data-flow order, so every message sent before has been handled.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from pykka.messages import ProxyCall, ProxyGetAttr

from actors.common.polling import poll_until
from actors.common.raw_config import child_node
from actors.execution.contract import ExecutorStats, GetExecutorStats
from actors.market.contract import Bars, GetMarketStats, MarketStats
from actors.risk.contract import BreakerGate
from supervisor import Runtime, SupervisedActor
from supervisor.host.config import load_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config.yaml"
BAR_SECONDS = 60.0
MARKET_START = 1_767_225_600.0  # the synthetic market's first bar (2026-01-01T00:00:00Z)
POLL = 0.005  # seconds between checks while polling a condition

T = TypeVar("T")


# -- the config copy ---------------------------------------------------------------------------
def shipped_config() -> dict[str, Any]:
    """``config.yaml`` as plain data (YAML anchors already expanded)."""
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return copy.deepcopy(raw)


node = child_node  # the child called ``name`` anywhere in the tree of ``raw``


def settings(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``settings`` mapping of child ``name`` (created if absent)."""
    found: dict[str, Any] = node(raw, name).setdefault("settings", {})
    return found


STATE_FILES: Mapping[str, tuple[str, str]] = MappingProxyType({
    # child -> (settings key, file name in the state directory)
    "alerts": ("fallback_file", "alerts-fallback.jsonl"),
    "breaker": ("database", "breaker.db"),
    "positions": ("database", "ledger.db"),
    "trade_manager": ("path", "trade_manager.json"),
    "paper_wallet": ("path", "paper_wallet.yaml"),
    "positions_log": ("path", "positions.log"),
    "exchange": ("database", "paper_exchange.db"),
    "market": ("clock_file", "market_clock.json"),
})


def redirect_state(raw: dict[str, Any], directory: Path) -> None:
    """Point every state file of the tree into ``directory``, and the state directory
    (``runtime.state_dir``: ``botvisor run``'s lock) there too (the shipped file uses
    ``state/...`` relative to the working directory, which a test must not share with
    anything else)."""
    for name, (key, filename) in STATE_FILES.items():
        settings(raw, name)[key] = str(directory / filename)
    raw.setdefault("runtime", {})["state_dir"] = str(directory)


def write_config(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def start_tree(config_path: Path) -> Runtime:
    """Build the tree from ``config_path`` and start it, as ``botvisor run`` does."""
    config, spec = load_config(config_path)
    runtime = Runtime(
        error_handler=config.error_handler(),
        ask_timeout=config.runtime.ask_timeout,
        monitor_interval=config.runtime.monitor_interval,
        event_history=config.runtime.event_history,
    )
    runtime.start(spec, name=config.runtime.name, shutdown=config.tree.shutdown)
    return runtime


# -- observing the tree ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TapeEntry:
    """One market step as the tape saw it: the bar time and the breaker's state then."""

    at: float
    breaker: str


class MarketTape(SupervisedActor):
    """Records, for every market step it is sent, the bar time and the breaker state.

    A test adds it to the tree and to the market's ``subscribers``; ``"tape"`` (an ask)
    returns what it recorded. The breaker state is the breaker's published gate, read
    lock-free when the step arrives.
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[TapeEntry] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            gate = self.ctx.peek("breaker")
            state = gate.state.value if isinstance(gate, BreakerGate) else "none"
            self.entries.append(TapeEntry(message.bars[0].at, state))
            return None
        if message == "tape":
            return list(self.entries)
        return super().on_receive(message)


def crash(rt: Runtime, name: str) -> None:
    """Make actor ``name`` raise AttributeError in its own handler (see the module doc)."""
    rt.tell(name, ProxyCall(attr_path=("no_such_handler_injected_by_test",), args=(),
                            kwargs={}))


def attr(rt: Runtime, name: str, attribute: str) -> Any:
    """Read an attribute of a running actor through pykka's ProxyGetAttr (an ask)."""
    return rt.ask(name, ProxyGetAttr(attr_path=(attribute,)))


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None/False; fail at the deadline."""
    try:
        return poll_until(check, timeout=timeout, what=what, poll=POLL)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


def market_stats(rt: Runtime) -> MarketStats:
    stats = rt.ask("market", GetMarketStats())
    assert isinstance(stats, MarketStats)
    return stats


def executor_stats(rt: Runtime) -> ExecutorStats:
    stats = rt.ask("executor", GetExecutorStats())
    assert isinstance(stats, ExecutorStats)
    return stats


def drain_pipeline(rt: Runtime) -> None:
    """Ask the pipeline's actors in data-flow order: each reply means every message sent to
    it before has been handled (and what that handling sent on is queued downstream)."""
    rt.ask("scanner", "candidates", timeout=30)
    attr(rt, "evaluator", "signals")
    attr(rt, "exits", "requests")
    rt.ask("executor", GetExecutorStats(), timeout=30)


def bar_time(index: int) -> float:
    """Market time of the synthetic market's bar ``index``."""
    return MARKET_START + index * BAR_SECONDS


# -- what is on disk ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoredFill:
    """A fill as a SQLite file holds it (amounts as exact decimals)."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    at: float


def _read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _stored(rows: list[tuple[Any, ...]]) -> list[StoredFill]:
    return [StoredFill(str(fid), str(coid), str(sym), str(side), Decimal(str(qty)),
                       Decimal(str(price)), Decimal(str(fee)), float(at))
            for fid, coid, sym, side, qty, price, fee, at in rows]


def venue_fills(path: Path) -> list[StoredFill]:
    """The paper exchange's fills, in the order it made them."""
    return _stored(_read(path, "SELECT fill_id, client_order_id, symbol, side, quantity, "
                               "price, fee, at FROM fills ORDER BY rowid"))


def venue_orders(path: Path) -> list[tuple[str, str, str, str]]:
    """The paper exchange's orders: (client order id, symbol, side, status)."""
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in _read(
        path, "SELECT client_order_id, symbol, side, status FROM orders ORDER BY rowid")]


def ledger_fills(path: Path) -> list[StoredFill]:
    """The ledger's fills, in seq order."""
    return _stored(_read(path, "SELECT fill_id, client_order_id, symbol, side, quantity, "
                               "price, fee, at FROM fills ORDER BY seq"))


def count_rows(path: Path, table: str) -> int:
    """Rows in ``table`` of the SQLite file at ``path`` (0 while the file does not exist)."""
    if not path.exists():
        return 0
    try:
        return int(_read(path, f"SELECT COUNT(*) FROM {table}")[0][0])
    except sqlite3.OperationalError:
        return 0  # the table is not created yet


def assert_ledger_matches_venue(ledger: list[StoredFill], venue: list[StoredFill]) -> None:
    """Every venue fill is in the ledger exactly once, identical, and nothing else is."""
    ids = [f.fill_id for f in ledger]
    assert len(ids) == len(set(ids)), "a fill id appears twice in the ledger"
    venue_ids = [f.fill_id for f in venue]
    assert len(venue_ids) == len(set(venue_ids)), "a fill id appears twice at the venue"
    by_id = {f.fill_id: f for f in ledger}
    missing = [f.fill_id for f in venue if f.fill_id not in by_id]
    assert not missing, f"{len(missing)} venue fill(s) missing from the ledger: {missing[:5]}"
    extra = sorted(set(by_id) - set(venue_ids))
    assert not extra, f"{len(extra)} ledger fill(s) the venue never made: {extra[:5]}"
    differ = [(f, by_id[f.fill_id]) for f in venue if by_id[f.fill_id] != f]
    assert not differ, f"fills recorded differently from the venue: {differ[:3]}"
