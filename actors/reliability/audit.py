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
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import cast

from actors.portfolio.ledger import Ledger
from actors.reliability.audit_breaker import breaker_intervals
from actors.reliability.audit_checks import (
    check_exchange,
    check_ledger_tables,
    check_sources,
    compare_fills,
)
from actors.reliability.audit_copies import load_sources, open_copy, read_fills
from actors.reliability.audit_layout import StateLayout, find_layout, running_holder
from actors.reliability.audit_replay import replay
from actors.reliability.audit_report import AuditInputError, AuditReport, print_report

__all__ = ["AuditInputError", "AuditReport", "audit_state", "main"]

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_BAD_INPUT = 0, 1, 2
ORDER_SLACK = 5.0  # seconds between an order leaving and its fill being recorded, at most


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
    layout = find_layout(config_path, base)
    report = AuditReport(str(config_path))
    with tempfile.TemporaryDirectory(prefix="botvisor-audit-") as tmp:
        into = Path(tmp)
        exchange = open_copy(layout.exchange, "the exchange record", into,
                             {"orders", "fills"}, report=report, name="exchange.db")
        breaker = open_copy(layout.breaker, "the breaker state", into,
                            {"state", "transitions"}, report=report, name="breaker.db")
        ledger_db = open_copy(layout.ledger_path, "the ledger", into,
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
    holder = running_holder(layout.lock)
    if holder is not None:
        report.notes.append(f"{layout.lock}: names pid {holder}, which is running: the audit "
                            "read the state of a live bot (a snapshot, not its last word)")
    return report


def _audit(layout: StateLayout, exchange: sqlite3.Connection | None,
           breaker: sqlite3.Connection | None, ledger_db: sqlite3.Connection | None,
           into: Path, *, slack: float, report: AuditReport) -> None:
    """The checks, in order, on the copies ``audit_state`` opened (it closes them)."""
    venue = read_fills(exchange, "rowid") if exchange is not None else []
    if exchange is not None:
        assert layout.exchange is not None
        check_exchange(exchange, layout.exchange, report)
    intervals = breaker_intervals(breaker, cast(Path, layout.breaker), report) if breaker else None
    if ledger_db is None:
        if venue:
            report.violations.append(f"{layout.ledger_path}: no usable ledger while the "
                                     f"exchange has {len(venue)} fill(s)")
        return
    account = ledger_db.execute("SELECT COUNT(*) FROM account").fetchone()[0]
    if not account:
        report.violations.append(f"{layout.ledger_path}: the ledger has no account (empty)")
        return
    ledger_fills = read_fills(ledger_db, "seq")
    report.fills_checked = max(len(venue), len(ledger_fills))
    if exchange is not None:
        assert layout.exchange is not None
        compare_fills(venue, ledger_fills, layout.exchange, layout.ledger_path, report)
    if intervals is None and ledger_fills:
        report.notes.append("no breaker state: exposure against the breaker not checked")
    states = load_sources(layout.sources, into, has_fills=bool(ledger_fills), report=report)
    wanted = {state.last_seq for _, state, _ in states.values()}
    replayed, at_seq, last = replay(ledger_db, layout.ledger, layout.ledger_path, intervals,
                                    wanted=wanted, slack=slack, probes=layout.probes,
                                    report=report)
    ledger = Ledger(into / "ledger.db", starting_cash=layout.ledger.starting_cash,
                    allow_short=layout.ledger.allow_short)
    ledger_db.close()  # the Ledger opens the copy itself
    ledger.open()
    try:
        check_ledger_tables(ledger, replayed, layout.ledger_path, report)
        last = max(last, ledger.seq)
    finally:
        ledger.close()
    check_sources(states, at_seq, last, layout.ledger, report)


# -- the command -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """The command: audit, print the report (or its JSON), exit 0 clean, 1 not, 2 bad input."""
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
        print_report(report)
    return EXIT_CLEAN if report.clean else EXIT_VIOLATIONS


if __name__ == "__main__":
    sys.exit(main())
