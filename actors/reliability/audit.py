"""The offline state auditor: reads what a run left on disk and checks it.

``audit_state(config_path)`` finds the state files through the config, copies each into a
private temporary directory (SQLite read-only, ``immutable=1`` when no WAL is beside it)
and checks the copies only: exchange fills against the ledger, client order ids, the
ledger's tables against its replayed fills, every source against the ledger at its last
seq, and fills against the breaker's state. Missing or damaged state is never "clean".
``python -m actors.reliability.audit --config FILE [--dir DIR] [--json]`` exits 0 when
clean, 1 otherwise, 2 on bad input. How to read the result: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import urllib.parse
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import import_module
from pathlib import Path
from typing import Any, cast

from actors.common.messages import Fill, InvalidFill, Side
from actors.portfolio.book import Position, PositionBook
from actors.portfolio.contract import PositionView, SourceView
from actors.portfolio.ledger import Ledger
from actors.portfolio.positions import PositionActor
from actors.portfolio.reconcile import LedgerState, Reconciler
from actors.portfolio.sources import SourceActor, SourceSettings, SourceState
from actors.venues.paper_exchange import PaperExchange

__all__ = ["AuditReport", "audit_state", "main"]

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_BAD_INPUT = 0, 1, 2
ORDER_SLACK = 5.0  # seconds between an order leaving and its fill being recorded, at most
_BREAKER_CLASS = "actors.risk.breaker:BreakerActor"


@dataclass
class AuditReport:
    """What one audit found. ``clean`` only when nothing is missing and nothing violated."""

    config: str
    violations: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fills_checked: int = 0
    orders_checked: int = 0
    sources_checked: int = 0
    refused_to_trade: str | None = None  # the breaker's state and reason, when it bars orders

    @property
    def clean(self) -> bool:
        return not self.violations and not self.missing

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


class AuditInputError(Exception):
    """The config cannot be read, or names no ledger: nothing to audit (exit 2)."""


# -- where the state is ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    ledger: PositionActor.Settings
    ledger_path: Path
    exchange: Path | None  # None: no paper exchange (a live venue keeps its own record)
    breaker: Path | None
    probes: int  # exposure-increasing orders a HALF_OPEN stretch lets through
    lock: Path | None  # the state directory's lock file (runtime.state_dir), if configured
    sources: dict[str, tuple[type[SourceActor], SourceSettings, Path]]


def _layout(config_path: Path, base: Path) -> _Layout:
    from supervisor.host.config import ConfigError, NodeModel, load_config

    try:
        config, _spec = load_config(config_path)
    except ConfigError as exc:
        raise AuditInputError(str(exc)) from None
    nodes: dict[str, NodeModel] = {}

    def walk(children: list[NodeModel]) -> None:
        for child in children:
            nodes[child.name] = child
            walk(child.children or [])

    walk(config.tree.children)

    def resolve(path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else base / p

    def cls_of(node: NodeModel) -> type[Any] | None:
        if not node.actor or ":" not in node.actor:
            return None
        module, _, name = node.actor.partition(":")
        found = getattr(import_module(module), name, None)
        return found if isinstance(found, type) else None

    ledger: PositionActor.Settings | None = None
    exchange = breaker = None
    probes = 1
    for node in nodes.values():
        cls = cls_of(node)
        if cls is None:
            continue
        if issubclass(cls, PositionActor):
            ledger = PositionActor.Settings.model_validate(node.settings)
        elif issubclass(cls, PaperExchange):
            exchange = resolve(PaperExchange.Settings.model_validate(node.settings).database)
        elif node.actor == _BREAKER_CLASS or cls.__name__ == "BreakerActor":
            breaker = resolve(str(node.settings.get("database", "state/breaker.db")))
            probes = int(node.settings.get("half_open_max_calls", 1))
    if ledger is None:
        raise AuditInputError(f"{config_path}: the tree has no position actor (no ledger)")
    sources: dict[str, tuple[type[SourceActor], SourceSettings, Path]] = {}
    for name in ledger.sources:
        found = nodes.get(name)
        cls = cls_of(found) if found is not None else None
        if found is None or cls is None or not issubclass(cls, SourceActor):
            raise AuditInputError(f"{config_path}: source {name!r} is not a source actor")
        src = SourceSettings.model_validate(found.settings)
        sources[name] = (cls, src, resolve(src.path))
    state_dir = getattr(config.runtime, "state_dir", None)
    lock = resolve(state_dir) / "botvisor.lock" if isinstance(state_dir, str) else None
    return _Layout(ledger, resolve(ledger.database), exchange, breaker, probes, lock, sources)


# -- reading without touching ----------------------------------------------------------------
def _copy_db(path: Path, into: Path, name: str) -> Path:
    """A private copy of the SQLite file at ``path`` (its WAL applied), read read-only."""
    wal = path.with_name(path.name + "-wal")
    query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    src = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?{query}", uri=True,
                          timeout=10)
    copy = into / name
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
        ok = dst.execute("PRAGMA quick_check").fetchone()
        if ok is None or ok[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {ok[0] if ok else 'no answer'}")
    finally:
        dst.close()
        src.close()
    return copy


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _open_copy(path: Path | None, label: str, into: Path, tables: set[str], *,
               report: AuditReport, name: str) -> sqlite3.Connection | None:
    """A connection to a copy of ``path``, or None (recorded as missing or damaged)."""
    if path is None:
        return None
    if not path.exists():
        report.missing.append(f"{path}: {label} is missing")
        return None
    try:
        copy = _copy_db(path, into, name)
        db = sqlite3.connect(copy)
        lacking = tables - _tables(db)
    except sqlite3.DatabaseError as exc:
        report.violations.append(f"{path}: {label} is damaged ({exc})")
        return None
    if lacking:
        what = "empty" if not _tables(db) else f"lacks table(s) {', '.join(sorted(lacking))}"
        report.violations.append(f"{path}: {label} is {what}")
        db.close()
        return None
    return db


_FILL_SQL = ("SELECT fill_id, client_order_id, symbol, side, quantity, price, fee, at "
             "FROM fills ORDER BY {}")


def _fills(db: sqlite3.Connection, order: str) -> list[tuple[Any, ...]]:
    return [tuple(str(v) if i < 7 else float(v) for i, v in enumerate(row))
            for row in db.execute(_FILL_SQL.format(order))]


# -- the checks ------------------------------------------------------------------------------
def _check_exchange(db: sqlite3.Connection, path: Path, report: AuditReport) -> None:
    orders = db.execute("SELECT client_order_id, status FROM orders").fetchall()
    report.orders_checked = len(orders)
    for coid, n in Counter(c for c, _ in orders).items():
        if n > 1:
            report.violations.append(f"{path}: client order id {coid} is used by {n} orders")
    status = dict(orders)
    per_order = Counter(r[1] for r in db.execute("SELECT fill_id, client_order_id FROM fills"))
    for coid, n in per_order.items():
        if status.get(coid) != "filled":
            report.violations.append(f"{path}: order {coid} has {n} fill(s) but its status is "
                                     f"{status.get(coid, 'no order row')!r}")
    for coid, st in status.items():
        if st == "filled" and coid not in per_order:
            report.violations.append(f"{path}: order {coid} is 'filled' with no fill")


def _compare_fills(venue: list[tuple[Any, ...]], ledger: list[tuple[Any, ...]],
                   exchange_path: Path, ledger_path: Path, report: AuditReport) -> None:
    for fid, n in Counter(f[0] for f in ledger).items():
        if n > 1:
            report.violations.append(f"{ledger_path}: fill {fid} is recorded {n} times")
    for fid, n in Counter(f[0] for f in venue).items():
        if n > 1:
            report.violations.append(f"{exchange_path}: fill {fid} appears {n} times")
    mine = {f[0]: f for f in ledger}
    theirs = {f[0]: f for f in venue}
    for f in venue:
        got = mine.get(f[0])
        if got is None:
            report.violations.append(f"{ledger_path}: lacks exchange fill {f[0]} "
                                     f"(order {f[1]}, {f[3]} {f[4]} {f[2]})")
        elif _norm(got) != _norm(f):
            report.violations.append(f"{ledger_path}: fill {f[0]} (order {f[1]}) differs "
                                     f"from {exchange_path}: {got[1:]} vs {f[1:]}")
    for f in ledger:
        if f[0] not in theirs:
            report.violations.append(f"{ledger_path}: fill {f[0]} (order {f[1]}) was never "
                                     f"made by the exchange ({exchange_path})")


def _norm(f: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return (f[1], f[2], f[3], Decimal(f[4]), Decimal(f[5]), Decimal(f[6]), f[7])
    except InvalidOperation:
        return f


@dataclass
class _Interval:
    state: str
    start: float
    reason: str
    added: int = 0  # exposure-increasing fills recorded in it


def _breaker(db: sqlite3.Connection, path: Path, report: AuditReport) -> list[_Interval]:
    """The breaker's states over time, from its transitions; sets ``refused_to_trade``."""
    intervals: list[_Interval] = []
    row = db.execute("SELECT record FROM state WHERE id = 1").fetchone()
    try:
        for at, record in db.execute("SELECT at, record FROM transitions ORDER BY id"):
            rec = json.loads(record)
            if not intervals:
                # before its first transition the breaker's state is not known: a breaker
                # whose file was lost starts afresh (possibly OPEN) with no history, so
                # "from" says nothing of the time before the file was made
                intervals.append(_Interval("unknown", float("-inf"), "before its history"))
            intervals.append(_Interval(str(rec["to"]), float(at), str(rec.get("reason", ""))))
        state = json.loads(row[0]) if row is not None else None
    except (ValueError, KeyError, TypeError) as exc:
        report.violations.append(f"{path}: breaker record is damaged ({exc})")
        return intervals
    if state is None:
        report.violations.append(f"{path}: breaker has no state row (it must not read as "
                                 "CLOSED)")
        return intervals
    if state.get("state") in ("open", "halted"):
        since = datetime.fromtimestamp(float(state.get("since") or 0), UTC)
        report.refused_to_trade = (f"breaker {state['state']} since {since:%Y-%m-%d %H:%M:%S}Z "
                                   f"by {state.get('by')}: {state.get('reason')}")
    return intervals


def _state_at(intervals: list[_Interval], when: float) -> _Interval | None:
    current = None
    for interval in intervals:
        if interval.start <= when:
            current = interval
        else:
            break
    return current


def _snapshot(book: PositionBook) -> PositionBook:
    copy = PositionBook(book.cash, allow_short=book.allow_short)
    copy.positions = dict(book.positions)
    copy.realized_pnl, copy.fees = book.realized_pnl, book.fees
    return copy


def _replay(db: sqlite3.Connection, settings: PositionActor.Settings, path: Path,
            intervals: list[_Interval] | None, *, wanted: set[int], slack: float,
            probes: int, report: AuditReport) -> tuple[PositionBook, dict[int, PositionBook], int]:
    """Replay the ledger's fills and adjustments in seq order through a PositionBook.

    Returns the final book, the book at each seq in ``wanted``, and the last seq. An
    impossible fill is a violation; an exposure-increasing fill recorded in an OPEN or
    HALTED stretch of the breaker (older than ``slack``) is one too.
    """
    starting = db.execute("SELECT value FROM account WHERE key = 'starting_cash'").fetchone()
    cash = Decimal(starting[0]) if starting is not None else settings.starting_cash
    book = PositionBook(cash, allow_short=settings.allow_short)
    events: list[tuple[int, str, Any]] = [
        (int(r[0]), "fill", r) for r in db.execute(
            "SELECT seq, fill_id, client_order_id, symbol, side, quantity, price, fee, at, "
            "venue, recorded_at FROM fills")]
    events += [(int(r[0]), "adjustment", r) for r in db.execute(
        "SELECT seq, at, symbol, field, new FROM adjustments")]
    events.sort(key=lambda e: e[0])
    at_seq: dict[int, PositionBook] = {}
    if 0 in wanted:
        at_seq[0] = _snapshot(book)
    seq = 0
    for seq, kind, row in events:
        if kind == "fill":
            _, fid, coid, symbol, side, qty, price, fee, at, venue, recorded_at = row
            fill = Fill(fid, coid, symbol, Side(side), Decimal(qty), Decimal(price),
                        Decimal(fee), float(at), venue)
            held = book.positions.get(symbol)
            before = held.quantity if held is not None else Decimal(0)
            delta = fill.quantity if fill.side is Side.BUY else -fill.quantity
            if intervals and abs(before + delta) > abs(before):
                _check_gate(fill, float(recorded_at), intervals, slack, path=path,
                            report=report, probes=probes)
            try:
                book.apply(fill)
            except InvalidFill as exc:
                report.violations.append(f"{path}: impossible book at seq {seq}: {exc}")
                book.apply(fill, check=False)
        else:
            _, at, symbol, what, new = row
            try:
                if what == "cash":
                    book.cash = Decimal(new)
                else:
                    value = json.loads(new)
                    book.set_position(symbol, Decimal(value["quantity"]),
                                      Decimal(value["avg_price"]), float(at))
            except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
                report.violations.append(f"{path}: adjustment at seq {seq} is damaged ({exc})")
        if seq in wanted:
            at_seq[seq] = _snapshot(book)
    return book, at_seq, seq


def _check_gate(fill: Fill, recorded_at: float, intervals: list[_Interval], slack: float, *,
                path: Path, report: AuditReport, probes: int) -> None:
    state = _state_at(intervals, recorded_at)
    if state is None or state.state == "unknown":
        return
    if state.state == "half_open":
        state.added += 1
        if state.added > probes:
            report.violations.append(
                f"{path}: fill {fill.fill_id} (order {fill.client_order_id}) adds exposure "
                f"as probe {state.added} of a HALF_OPEN breaker that allows {probes}")
        return
    if state.state not in ("open", "halted"):
        return
    if recorded_at - state.start > slack:
        when = datetime.fromtimestamp(recorded_at, UTC)
        report.violations.append(
            f"{path}: fill {fill.fill_id} (order {fill.client_order_id}, {fill.side.value} "
            f"{fill.quantity} {fill.symbol}) adds exposure, recorded at "
            f"{when:%H:%M:%S.%f}Z while the breaker was {state.state} for "
            f"{recorded_at - state.start:.1f}s ({state.reason})")


def _check_ledger_tables(ledger: Ledger, replayed: PositionBook, path: Path,
                         report: AuditReport) -> None:
    """The ledger's position and account tables (read by the Ledger itself) against the
    replay of its events, and the book's possibility."""
    book = ledger.book
    if book.cash != replayed.cash:
        report.violations.append(f"{path}: account cash {book.cash} but its events give "
                                 f"{replayed.cash}")
    if book.cash < 0:
        report.violations.append(f"{path}: negative cash {book.cash}")
    for symbol in sorted(set(book.positions) | set(replayed.positions)):
        a, b = book.positions.get(symbol), replayed.positions.get(symbol)
        if _qty(a) != _qty(b):
            report.violations.append(f"{path}: position {symbol} is {_qty(a)} but its events "
                                     f"give {_qty(b)}")
        if a is not None and a.quantity < 0 and not ledger.allow_short:
            report.violations.append(f"{path}: negative holding {a.quantity} {symbol}")


def _qty(p: Position | None) -> Decimal:
    return p.quantity if p is not None else Decimal(0)


def _source_state(cls: type[SourceActor], settings: SourceSettings, path: Path,
                  into: Path) -> SourceState:
    """The source's file, read by its own class, from a private copy (a source's reader may
    repair what it reads, e.g. drop a torn last line)."""
    copy = into / f"source-{path.name}"
    shutil.copyfile(path, copy)
    actor = cls(settings.model_copy(update={"path": str(copy)}))
    return actor.load()


def _view(name: str, cls: type[SourceActor], state: SourceState) -> SourceView:
    book = state.book
    return SourceView(
        source=name, last_seq=state.last_seq,
        positions={s: PositionView(p.quantity, p.avg_price, p.updated_at)
                   for s, p in book.positions.items()},
        cash=book.cash if cls.keeps_cash else None, updated_at=state.updated_at)


# -- the audit -------------------------------------------------------------------------------
def audit_state(config_path: Path, base_dir: Path | None = None, *,
                order_slack: float = ORDER_SLACK) -> AuditReport:
    """Audit the state a run with ``config_path`` left (relative paths under ``base_dir``,
    by default the current directory, as ``botvisor run`` resolves them).

    Raises :class:`AuditInputError` when the config is unusable.

    The breaker check is approximate: the exchange's record has no wall-clock time of an
    order's acceptance (``paper_exchange.db`` ``orders`` would need an ``accepted_at REAL``
    column on the clock of ``breaker.db`` ``transitions.at``), so a fill is judged by the
    ledger's ``fills.recorded_at``; only a stretch OPEN or HALTED longer than
    ``order_slack`` before it counts, and a fill a venue sync recovered after a restart is
    judged by when it was recovered.
    """
    base = Path.cwd() if base_dir is None else base_dir
    layout = _layout(config_path, base)
    report = AuditReport(str(config_path))
    with tempfile.TemporaryDirectory(prefix="botvisor-audit-") as tmp:
        into = Path(tmp)
        exchange = _open_copy(layout.exchange, "the exchange record", into,
                              {"orders", "fills"}, report=report, name="exchange.db")
        breaker = _open_copy(layout.breaker, "the breaker state", into,
                             {"state", "transitions"}, report=report, name="breaker.db")
        ledger_db = _open_copy(layout.ledger_path, "the ledger", into,
                               {"fills", "positions", "account", "adjustments"},
                               report=report, name="ledger.db")
        try:
            _audit(layout, exchange, breaker, ledger_db, into, slack=order_slack, report=report)
        finally:
            for db in (exchange, breaker, ledger_db):
                if db is not None:
                    db.close()
    if layout.exchange is None:
        report.notes.append("no paper exchange in the tree: venue fills not cross-checked")
    holder = _running_holder(layout.lock)
    if holder is not None:
        report.notes.append(f"{layout.lock}: names pid {holder}, which is running: the audit "
                            "read the state of a live bot (a snapshot, not its last word)")
    return report


def _running_holder(lock: Path | None) -> int | None:
    """The pid the lock file names, if that process exists. The lock itself is never
    taken: even a shared lock for a moment could make a bot starting then refuse to."""
    if lock is None:
        return None
    try:
        pid = int(lock.read_text(encoding="utf-8").split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _audit(layout: _Layout, exchange: sqlite3.Connection | None,
           breaker: sqlite3.Connection | None, ledger_db: sqlite3.Connection | None,
           into: Path, *, slack: float, report: AuditReport) -> None:
    venue = _fills(exchange, "rowid") if exchange is not None else []
    if exchange is not None:
        assert layout.exchange is not None
        _check_exchange(exchange, layout.exchange, report)
    intervals = _breaker(breaker, cast(Path, layout.breaker), report) if breaker else None
    if ledger_db is None:
        if venue:
            report.violations.append(f"{layout.ledger_path}: no usable ledger while the "
                                     f"exchange has {len(venue)} fill(s)")
        return
    account = ledger_db.execute("SELECT COUNT(*) FROM account").fetchone()[0]
    if not account:
        report.violations.append(f"{layout.ledger_path}: the ledger has no account (empty)")
        return
    ledger_fills = _fills(ledger_db, "seq")
    report.fills_checked = max(len(venue), len(ledger_fills))
    if exchange is not None:
        assert layout.exchange is not None
        _compare_fills(venue, ledger_fills, layout.exchange, layout.ledger_path, report)
    if intervals is None and ledger_fills:
        report.notes.append("no breaker state: exposure against the breaker not checked")
    states: dict[str, tuple[type[SourceActor], SourceState, Path]] = {}
    for name, (cls, settings, path) in layout.sources.items():
        if not path.exists():
            if ledger_fills:
                report.missing.append(f"{path}: source {name} is missing")
            else:
                report.notes.append(f"{path}: source {name} not written yet (no fills)")
            continue
        try:
            states[name] = (cls, _source_state(cls, settings, path, into), path)
        except Exception as exc:  # whatever its reader raises, the file is damaged
            report.violations.append(f"{path}: source {name} is damaged "
                                     f"({type(exc).__name__}: {exc})")
    wanted = {state.last_seq for _, state, _ in states.values()}
    replayed, at_seq, last = _replay(ledger_db, layout.ledger, layout.ledger_path, intervals,
                                     wanted=wanted, slack=slack, probes=layout.probes,
                                     report=report)
    ledger = Ledger(into / "ledger.db", starting_cash=layout.ledger.starting_cash,
                    allow_short=layout.ledger.allow_short)
    ledger_db.close()  # the Ledger opens the copy itself
    ledger.open()
    try:
        _check_ledger_tables(ledger, replayed, layout.ledger_path, report)
        last = max(last, ledger.seq)
    finally:
        ledger.close()
    for name, (cls, state, path) in states.items():
        report.sources_checked += 1
        if state.last_seq > last:
            report.violations.append(f"{path}: source {name} is at seq {state.last_seq}, "
                                     f"ahead of the ledger ({last})")
            continue
        book = at_seq.get(state.last_seq)
        if book is None:
            report.violations.append(f"{path}: source {name} is at seq {state.last_seq}, "
                                     "which the ledger never had")
            continue
        ledger_at = LedgerState(state.last_seq, book.cash, {
            s: PositionView(p.quantity, p.avg_price, p.updated_at)
            for s, p in book.positions.items()})
        reconciler = Reconciler(layout.ledger.conflict_strategy, layout.ledger.price_tolerance)
        for c in reconciler.detect(name, _view(name, cls, state), ledger_at):
            report.violations.append(
                f"{path}: source {name} disagrees with the ledger at seq {state.last_seq}: "
                f"{c.kind} {c.symbol or ''} ledger={c.ledger_value} source={c.source_value}")
        if state.last_seq < last:
            report.notes.append(f"{path}: source {name} lags the ledger by "
                                f"{last - state.last_seq} event(s) (caught up at next start)")


# -- the command -----------------------------------------------------------------------------
def _print(report: AuditReport) -> None:
    status = "clean" if report.clean else "NOT CLEAN"
    print(f"audit of {report.config}: {status}")
    print(f"  fills checked {report.fills_checked}, orders checked {report.orders_checked}, "
          f"sources checked {report.sources_checked}")
    if report.refused_to_trade:
        print(f"  refused to trade: {report.refused_to_trade}")
    for title, items in (("missing", report.missing), ("violations", report.violations),
                         ("notes", report.notes)):
        if items:
            print(f"  {title}:")
            for item in items:
                print(f"    - {item}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.reliability.audit",
                                     description="Check the state a botvisor run left.")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where relative state paths start (default: current directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = audit_state(args.config, args.dir)
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        _print(report)
    return EXIT_CLEAN if report.clean else EXIT_VIOLATIONS


if __name__ == "__main__":
    sys.exit(main())
