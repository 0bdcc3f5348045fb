"""A damaged projection is rebuilt from the ledger, not restart-looped (issue 15, item 4).

Each test runs a real ledger subtree (position actor, the three sources, real SQLite and
real files) under a real alerts actor, records fills, stops the tree, damages one source's
file on disk the way a crash, a bad disk or a hand edit does, and starts the tree again.
Then: the source is up and never restarted, it reconciles cleanly with the ledger (the
position actor's own reconciliation report), the warning in the log and the alert name the
file, and the damaged bytes are kept aside as ``<name>.damaged-<time>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from actors.alerts.alerts import AlertsActor
from actors.alerts.contract import AlertStats, GetAlertStats
from actors.common.messages import Fill, Side
from actors.portfolio.contract import GetView, Reconcile, ReconcileReport, RecordFill, SourceView
from supervisor import ChildSpec, Runtime, SupervisorSpec
from supervisor.tree_view import TreeNode
from tests.support.position_helpers import Inbox, ledger_spec

FILES = {
    "trade_manager": "trade_manager.json",
    "paper_wallet": "paper_wallet.yaml",
    "positions_log": "positions.log",
}

FILLS = (
    Fill("f1", "o1", "BTC/USDT", Side.BUY, Decimal("0.5"), Decimal("30000"), Decimal("1.5"), 1.0),
    Fill("f2", "o2", "ETH/USDT", Side.BUY, Decimal("4"), Decimal("2000"), Decimal("0.8"), 2.0),
    Fill("f3", "o3", "BTC/USDT", Side.SELL, Decimal("0.2"), Decimal("31000"), Decimal("0.6"), 3.0),
    Fill("f4", "o4", "SOL/USDT", Side.BUY, Decimal("10"), Decimal("40"), Decimal("0.4"), 4.0),
)


def _start(directory: Path) -> Runtime:
    alerts = AlertsActor.Settings(
        fallback_file=str(directory / "alerts-fallback.jsonl"),
        routes={"info": [], "warning": [], "error": [], "critical": []},  # type: ignore[arg-type]
        shutdown_severity=None,
    )
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("alerts", factory=lambda: AlertsActor(alerts)),
        ChildSpec("breaker", factory=Inbox),  # a breaker stand-in
        ChildSpec("ledger", supervisor=ledger_spec(directory)),
    )))
    return rt


def _seed(directory: Path) -> None:
    """A ledger with fills, and every source's file written and closed."""
    rt = _start(directory)
    try:
        for fill in FILLS:
            rt.ask("positions", RecordFill(fill))
        for name in FILES:
            view = rt.ask(name, GetView())
            assert view.last_seq == len(FILLS)
    finally:
        rt.stop()


def _node(rt: Runtime, name: str) -> TreeNode:
    stack = [rt.tree()]
    while stack:
        node = stack.pop()
        assert node is not None
        if node.name == name:
            return node
        stack.extend(node.children)
    raise AssertionError(f"no {name} in the tree")


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _garble(raw: bytes) -> bytes:
    mid = len(raw) // 2
    return raw[:mid] + b"\x00\xff}{[: garbage ::" + raw[mid + 20:]


def _empty(raw: bytes) -> bytes:
    return b""


def _wrong_type(raw: bytes) -> bytes:
    return b"- just\n- a list\n"  # valid YAML (and a YAML list), not a state


def _garble_middle_line(raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    assert len(lines) >= 3
    middle = len(lines) // 2
    lines[middle] = b'{"type":"fill","seq":' + b"\xfe\xfe not json\n"
    return b"".join(lines)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": _truncate, "garbled": _garble, "empty": _empty, "wrong_type": _wrong_type,
}
CASES = [(source, kind) for source in ("trade_manager", "paper_wallet") for kind in DAMAGE]
CASES.append(("positions_log", "garbled_middle_line"))


@pytest.mark.parametrize(("source", "kind"), CASES)
def test_a_damaged_source_is_set_aside_and_rebuilt_from_the_ledger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, source: str, kind: str
) -> None:
    _seed(tmp_path)
    path = tmp_path / FILES[source]
    damage = DAMAGE.get(kind, _garble_middle_line)
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)

    caplog.set_level(logging.INFO)
    rt = _start(tmp_path)
    try:
        report = rt.ask("positions", Reconcile("test"))
        assert isinstance(report, ReconcileReport)
        assert source in report.checked and not report.unavailable
        assert report.clean, report.conflicts
        view = rt.ask(source, GetView())
        assert isinstance(view, SourceView)
        assert view.last_seq == len(FILLS)
        assert set(view.positions) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
        assert view.positions["BTC/USDT"].quantity == Decimal("0.3")
        node = _node(rt, source)
        assert node.state == "running" and node.restarts == 0
        assert _node(rt, "ledger").restarts == 0
        stats = rt.ask("alerts", GetAlertStats())
        assert isinstance(stats, AlertStats) and stats.received >= 1
    finally:
        rt.stop()

    aside = list(tmp_path.glob(f"{FILES[source]}.damaged-*"))
    assert len(aside) == 1, aside
    assert aside[0].read_bytes() == damaged  # the damaged copy is kept, byte for byte
    warnings = [r for r in caplog.records
                if r.levelno >= logging.WARNING and str(path) in r.getMessage()]
    assert any(r.name == "actors.portfolio.sources" for r in warnings), caplog.text
    alerts = [r for r in warnings if r.name == "botvisor.alerts"]
    assert alerts and "damaged" in alerts[0].getMessage(), caplog.text
    # the rebuilt file reads back whole: a third start finds nothing damaged
    rt = _start(tmp_path)
    try:
        assert rt.ask(source, GetView()).last_seq == len(FILLS)
    finally:
        rt.stop()
    assert len(list(tmp_path.glob(f"{FILES[source]}.damaged-*"))) == 1


def test_a_torn_last_line_of_the_positions_log_is_dropped_not_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(tmp_path)
    path = tmp_path / "positions.log"
    raw = path.read_bytes()
    last = raw.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(raw[: last + (len(raw) - last) // 2])  # half the last line, as a crash

    caplog.set_level(logging.INFO)
    rt = _start(tmp_path)
    try:
        report = rt.ask("positions", Reconcile("test"))
        assert report.clean, report.conflicts
        assert rt.ask("positions_log", GetView()).last_seq == len(FILLS)
        assert _node(rt, "positions_log").restarts == 0
    finally:
        rt.stop()
    assert not list(tmp_path.glob("positions.log.damaged-*"))
    assert "dropping a torn last line" in caplog.text
    assert "is damaged" not in caplog.text
